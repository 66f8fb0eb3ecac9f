"""The papers' configurations: they validate, dry-run to the full DAG, and their full-size networks train.

Nothing here needs the real data or the Inception weights: the data roots and the weights file
are empty stand-ins created at the configs' relative paths in a temporary working directory
(config validation checks that the weights file exists; a dry run never opens it).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, copy_workflow, snakemake
from snakemake.utils import update_config

from mdmlib import paths
from mdmlib.config import RunConfig, load_config
from mdmlib.core.intervals import Interval
from mdmlib.core.schedule import NoiseSchedule
from mdmlib.models.registry import new_model
from mdmlib.training.job import snapshot_steps, train_job
from mdmlib.training.loop import new_state, train_step
from mdmlib.training.samplers import StagedSampler, make_sampler

PAPER_CONFIGS = ["cifar10_adm", "cifar10_p2w", "imagenet32_softtrunc"]
# Parameters of one network (MDM trains three). ADM's CIFAR-10 U-Net; the ImageNet-32 entry is the
# ADM-style stand-in at DDPM++'s size (DDPM++ itself has ~62M).
PARAMETERS = {"cifar10_adm": 52_743_427, "cifar10_p2w": 52_743_427, "imagenet32_softtrunc": 62_823_555}


def paper_values(name: str) -> dict:
    """config.yaml with configs/<name>.yaml deep-merged over it, as `--configfile` does."""
    values = yaml.safe_load((REPO / "config.yaml").read_text())
    update_config(values, yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text()))
    return values


def make_stand_ins(workdir: Path, values: dict) -> None:
    """Empty data root and weights file at the paths the config names (relative to ``workdir``)."""
    (workdir / values["data"]["root"]).mkdir(parents=True, exist_ok=True)
    weights = workdir / values["metrics"]["inception_weights"]
    weights.parent.mkdir(parents=True, exist_ok=True)
    weights.write_bytes(b"stand-in: validation checks only that the file exists")


def paper_config(name: str, workdir: Path, monkeypatch) -> RunConfig:
    values = paper_values(name)
    make_stand_ins(workdir, values)
    monkeypatch.chdir(workdir)  # the configs' paths are relative to the working directory
    return load_config(values)


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_config_validates_with_relative_local_paths(name, tmp_path, monkeypatch):
    cfg = paper_config(name, tmp_path, monkeypatch)
    assert not Path(cfg.data.root).is_absolute() and not Path(cfg.metrics.inception_weights).is_absolute()
    assert cfg.metrics.features == "inception"
    assert cfg.metrics.inception_weights.endswith("weights-inception-2015-12-05-6726825d.pth")
    assert (cfg.data.resolution, cfg.data.channels) == (32, 3)
    assert cfg.diffusion.timesteps == 1000 and cfg.training.batch_size == 128
    assert cfg.sampling.steps == 50 and cfg.sampling.eta == 0.0
    assert cfg.intervals.settings("attention").images == 1000 and cfg.intervals.settings("attention").checkpoint_fraction == 0.1
    assert (cfg.convergence.max_change, cfg.convergence.consecutive, cfg.convergence.max_gap_to_best) == (0.1, 3, 0.3)
    assert cfg.intervals.study.iterations == cfg.training.baseline_iterations
    assert cfg.training.checkpoint_every % cfg.training.log_every == 0


@pytest.mark.parametrize("name, recipe", [("cifar10_adm", "adm"), ("cifar10_p2w", "p2w")])
def test_cifar10_configs_have_the_mdm_paper_settings(name, recipe, tmp_path, monkeypatch):
    cfg = paper_config(name, tmp_path, monkeypatch)
    assert cfg.training.recipe == recipe
    assert cfg.data.dataset == "cifar10" and Path(cfg.data.root).name == "cifar-10-batches-py"
    assert cfg.data.max_val is None  # the official 10k test images are the validation set
    assert cfg.model.base_channels == 128 and cfg.model.channel_mult == (1, 2, 2, 2)
    assert cfg.model.num_res_blocks == 3 and cfg.model.attention_resolutions == (32, 16, 8)
    assert cfg.model.channels_per_head == 32 and cfg.model.dropout == 0.3
    assert cfg.diffusion.schedule == "cosine"
    assert cfg.training.learning_rate == 1e-4 and cfg.training.baseline_iterations == 500_000
    assert cfg.sampling.num_samples == 10_000
    assert cfg.experts.intervals == "paper" and cfg.experts.boundaries == (0.1, 0.8)


def test_the_two_cifar10_configs_differ_only_in_recipe_and_experiment():
    adm, p2w = paper_values("cifar10_adm"), paper_values("cifar10_p2w")
    assert (adm["experiment"], p2w["experiment"]) == ("mdm_adm", "mdm_p2w")
    for values in (adm, p2w):
        del values["experiment"], values["training"]["recipe"]
    assert adm == p2w


def test_imagenet32_config_has_the_soft_truncation_settings(tmp_path, monkeypatch):
    cfg = paper_config("imagenet32_softtrunc", tmp_path, monkeypatch)
    assert cfg.training.recipe == "soft_truncation" and cfg.training.baseline_iterations == 5_000_000
    assert cfg.experts.boundaries == (0.2, 0.6) == cfg.baselines.soft_truncation_boundaries
    assert cfg.data.dataset == "image_folder" and cfg.data.val_size == 50_000
    assert cfg.sampling.num_samples == 50_000
    # DDPM++'s ImageNet-32 size in the ADM-style U-Net, and the file says so
    assert cfg.model.base_channels == 128 and cfg.model.channel_mult == (1, 2, 2, 2)
    assert cfg.model.num_res_blocks == 4 and cfg.model.attention_resolutions == (16,)
    assert cfg.model.dropout == 0.0 and cfg.diffusion.schedule == "linear"
    header = (REPO / "configs" / "imagenet32_softtrunc.yaml").read_text().split("\nexperiment:")[0]
    assert "ADM-STYLE STAND-IN, NOT DDPM++" in header


def dry_run_counts(text: str) -> dict[str, int]:
    counts = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_config_dry_runs_the_dag_up_to_the_interval_checkpoints(name, tmp_path):
    workdir = copy_workflow(tmp_path)
    values = paper_values(name)
    make_stand_ins(workdir, values)
    text = snakemake(workdir, "--configfile", f"configs/{name}.yaml", "-n").stdout
    counts = dry_run_counts(text)
    points, methods = values["training"]["eval_points"], len(values["intervals"]["study"]["methods"])
    # The baseline, and its 10%-budget copy for the attention analysis unless a baseline snapshot
    # is that copy; the experts come after the checkpoints, and so do the study's samples.
    iterations = values["training"]["baseline_iterations"]
    copy = round(values["intervals"]["attention"]["checkpoint_fraction"] * iterations)
    counts["trained models"] = counts.get("train_baseline", 0) + counts.get("train_model", 0)
    expected = {"prepare_data": 1, "reference_statistics": 1,
                "trained models": 1 + (copy not in snapshot_steps(iterations, points)), "select_intervals": methods,
                "sample_point": 2 * points, "sample_extra_sets": 2 * points, "paper_tables": 1,
                "evaluate_series": 2 + methods + values["experts"]["n"], "expert_swap": 1,
                "sample_grid": 2, "interval_study": 1}
    assert {rule: counts.get(rule) for rule in expected} == expected, text[-3000:]
    assert "train_feature_net" not in counts  # Inception features need no trained classifier
    assert "checkpoint jobs" in text
    out = paths.results_dir(values["data"]["dataset"], values["experiment"]) + "/"
    assert out in text


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_full_size_network_builds_and_takes_a_training_step_on_the_cpu(name, tmp_path, monkeypatch):
    cfg = paper_config(name, tmp_path, monkeypatch)
    model = new_model(cfg.model, cfg.data.channels, cfg.data.resolution)
    count = sum(p.numel() for p in model.parameters())
    print(f"{name}: {count:,} parameters per network")
    assert count == PARAMETERS[name]
    assert 40e6 < count < 70e6  # ADM CIFAR-10 ~52M; DDPM++ ~62M
    del model

    schedule = NoiseSchedule.from_name(cfg.diffusion.schedule, cfg.diffusion.timesteps)
    sampler = make_sampler(cfg.training.recipe, Interval(0, cfg.diffusion.timesteps), schedule)
    state = new_state(cfg, cfg.data.channels, torch.device("cpu"), sampler)
    before = {k: v.clone() for k, v in state.model.state_dict().items()}
    images = torch.rand(4, cfg.data.channels, cfg.data.resolution, cfg.data.resolution) * 2 - 1
    started = time.perf_counter()
    t, losses = train_step(state, schedule, images, state.sampler, batch_size=2)
    print(f"{name}: one CPU step with batch 2 in {time.perf_counter() - started:.1f} s")
    assert t.shape == losses.shape == (2,) and torch.isfinite(losses).all()
    after = state.model.state_dict()
    assert not torch.equal(before["out.2.weight"], after["out.2.weight"])  # the zero-initialised output layer learnt
    assert all(torch.isfinite(v).all() for v in after.values())


# ---------------------------------------------------------------- the multi-stage paper's CIFAR-10


def test_multistage_config_has_the_papers_stages_by_equal_snr(tmp_path, monkeypatch):
    cfg = paper_config("cifar10_multistage", tmp_path, monkeypatch)
    schedule = NoiseSchedule.from_name(cfg.diffusion.schedule, cfg.diffusion.timesteps)
    snr = schedule.snr().double()
    for vp_time, fraction in zip((0.4420, 0.6308), cfg.experts.boundaries):
        alpha_bar = math.exp(-0.5 * vp_time ** 2 * (20.0 - 0.1) - 0.1 * vp_time)  # VP SDE, beta 0.1 to 20
        step = int(torch.argmin((snr.log() - math.log(alpha_bar / (1 - alpha_bar))).abs())) + 1  # t = index + 1
        assert round(fraction * cfg.diffusion.timesteps) == step
    assert cfg.multistage.intervals == cfg.experts.intervals == "paper"
    assert cfg.multistage.decoder_channels == (192, 128, 16) and cfg.model.base_channels == 128


def test_multistage_config_dry_runs_its_target(tmp_path):
    workdir = copy_workflow(tmp_path)
    values = paper_values("cifar10_multistage")
    make_stand_ins(workdir, values)
    text = snakemake(workdir, "multistage", "--configfile", "configs/cifar10_multistage.yaml", "-n").stdout
    counts = dry_run_counts(text)
    assert counts.get("multistage_tables") == 1 and counts.get("multistage_ablations") == 1, text[-3000:]
    assert counts.get("select_intervals") == 5, text[-3000:]  # the paper's 3 stages; Algorithm 2 for 2..5
    assert counts.get("train_baseline") == 1 and "checkpoint jobs" in text


def test_multistage_full_size_network_builds_and_takes_a_training_step_on_the_cpu(tmp_path, monkeypatch):
    cfg = paper_config("cifar10_multistage", tmp_path, monkeypatch)
    job = train_job("ms_t0-442-630-1000_e128_d192-128-16_i500000", cfg)
    sampler = StagedSampler(list(job.stages))
    state = new_state(cfg, cfg.data.channels, torch.device("cpu"), sampler, spec=job.model_spec)
    model = state.model  # built from the job's spec (one build of the 248M network: it is slow on a CPU)
    counts = {"total": sum(p.numel() for p in model.parameters()),
              "encoder": sum(p.numel() for p in model.encoder_parameters()),
              "decoders": [sum(p.numel() for p in d.parameters()) for d in model.decoders]}
    print(f"cifar10_multistage: {counts}")
    assert counts["total"] == 248_423_113  # the paper's Table 7: 237M
    assert counts["encoder"] == 44_463_232 and counts["decoders"][0] > counts["decoders"][1] > counts["decoders"][2]
    before = [d["out"][-1].weight.clone() for d in state.model.decoders]
    schedule = NoiseSchedule.from_name(cfg.diffusion.schedule, cfg.diffusion.timesteps)
    images = torch.rand(6, 3, 32, 32) * 2 - 1
    t, losses = train_step(state, schedule, images, sampler, batch_size=3)  # one sample per stage
    assert [sampler.stage_index(int(x)) for x in t] == [0, 1, 2] and torch.isfinite(losses).all()
    assert all(not torch.equal(b, d["out"][-1].weight) for b, d in zip(before, state.model.decoders))


# ---------------------------------------------------------------------- the TDC paper's CIFAR-10


def test_tdc_config_dry_runs_its_target_up_to_the_snr_groups(tmp_path):
    workdir = copy_workflow(tmp_path)
    values = paper_values("cifar10_tdc")
    make_stand_ins(workdir, values)
    text = snakemake(workdir, "tdc", "--configfile", "configs/cifar10_tdc.yaml", "-n").stdout
    counts = dry_run_counts(text)
    assert counts.get("tdc_tables") == 1 and counts.get("train_baseline") == 1, text[-3000:]
    assert counts.get("select_intervals") == 1 and "checkpoint jobs" in text  # snr, 8 groups


def test_tdc_config_groups_fill_and_its_full_size_network_prunes_to_the_smallest_limit(tmp_path, monkeypatch):
    from mdmlib.intervals.snr import snr_intervals
    from mdmlib.models.macs import count_parameters
    from mdmlib.pruning.importance import layer_scores
    from mdmlib.pruning.prune import prune_unet
    from mdmlib.pruning.scheme import (
        macs_counter,
        scheme_widths,
        spec_macs,
        unet_shape,
        uniform_scheme,
    )
    from mdmlib.studies.tdc_runs import group_limits, tdc_base_iterations

    cfg = paper_config("cifar10_tdc", tmp_path, monkeypatch)
    schedule = NoiseSchedule.from_name(cfg.diffusion.schedule, cfg.diffusion.timesteps)
    groups = snr_intervals(schedule, cfg.tdc.groups, cfg.intervals.settings("snr").min_flops_ratio).intervals
    assert len(groups) == 8 and cfg.sampling.steps == 100 and tdc_base_iterations(cfg) == 200_000
    limit = group_limits(8, 0.5)[0]
    assert limit == pytest.approx(0.5625)
    model = new_model(cfg.model, cfg.data.channels, cfg.data.resolution).eval()
    shape = unet_shape(model)
    full = spec_macs(model.spec)
    scheme = uniform_scheme(limit * full, macs_counter(model.spec, shape), shape)
    images = torch.rand(2, cfg.data.channels, cfg.data.resolution, cfg.data.resolution) * 2 - 1
    scores, _ = layer_scores(model, "magnitude", schedule, images, groups[0])
    started = time.perf_counter()
    pruned = prune_unet(model, scheme_widths(shape, scheme), scores)
    print(f"cifar10_tdc: pruned {count_parameters(model):,} -> {count_parameters(pruned):,} parameters to "
          f"{spec_macs(pruned.spec) / full:.3f} F in {time.perf_counter() - started:.1f} s")
    assert spec_macs(pruned.spec) <= limit * full and count_parameters(pruned) < count_parameters(model)
    t = torch.randint(groups[0].lo, groups[0].hi, (2,))
    loss = (pruned(images, t) - images).pow(2).mean()
    loss.backward()  # one training step's backward through the pruned paper-size network
    assert torch.isfinite(loss) and all(p.grad is not None for p in pruned.parameters() if p.requires_grad)


# ------------------------------------------------------------------ DiffPruning on CIFAR-10


def test_diffpruning_config_dry_runs_its_target_and_its_network_has_a_depth_layer_per_stage(tmp_path, monkeypatch):
    from mdmlib.models.unet import depth_layers

    workdir = copy_workflow(tmp_path / "workflow")
    values = paper_values("cifar10_diffpruning")
    make_stand_ins(workdir, values)
    text = snakemake(workdir, "diffpruning", "--configfile", "configs/cifar10_diffpruning.yaml", "-n").stdout
    counts = dry_run_counts(text)
    assert counts.get("diffpruning_tables") == 1 and counts.get("train_baseline") == 1, text[-3000:]
    assert counts.get("select_intervals") == 1 and "checkpoint jobs" in text  # gradient, 2 experts
    cfg = paper_config("cifar10_diffpruning", tmp_path / "cfg", monkeypatch)
    assert cfg.diffpruning.budgets == (0.7, 0.5, 0.3) and cfg.diffpruning.agent.hidden == 256
    with torch.device("meta"):
        model = new_model(cfg.model, cfg.data.channels, cfg.data.resolution)
    layers = depth_layers(model)
    assert {(layer.branch, layer.level) for layer in layers} == {(b, lv) for b in ("encoder", "decoder")
                                                                 for lv in range(4)}
