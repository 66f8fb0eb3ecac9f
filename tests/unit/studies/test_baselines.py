"""Tables 1, 3, 4 plumbing: recipe model names, the tau_A hybrid's routing, the spread tables."""
from __future__ import annotations

import pytest
import torch

from mdmlib.config import load_config
from mdmlib.core.intervals import Interval
from mdmlib.core.schedule import NoiseSchedule
from mdmlib.routing.mixture import mixture_from_checkpoints
from mdmlib.studies.runs import baseline_run_models, baseline_runs, run_routing
from mdmlib.training.checkpoint import CheckpointError, save_checkpoint
from mdmlib.training.job import TrainJob, model_name, snapshot_steps, train_job
from mdmlib.training.loop import checkpoint_payload, new_state
from mdmlib.training.samplers import make_sampler


@pytest.fixture()
def cfg():
    return load_config({"model": {"base_channels": 8, "channels_per_head": 8}, "training": {"baseline_iterations": 30}})


def test_recipes_enter_model_names_and_come_back_out(cfg):
    for recipe in ("adm", "p2w", "soft_truncation", "importance"):
        name = model_name(Interval(100, 800), 2100, recipe)
        job = train_job(name, cfg)
        assert (job.interval, job.iterations, job.recipe) == (Interval(100, 800), 2100, recipe)
    assert model_name(Interval(0, 1000), 3000) == "t0-1000_i3000"  # ADM keeps the plain name


def test_baseline_runs_pair_each_recipe_with_its_mdm_and_the_papers_splits(cfg):
    runs = baseline_runs(cfg)
    assert runs == ["base_adm", "mdm_adm", "base_p2w", "mdm_p2w", "base_soft_truncation", "mdm_soft_truncation",
                    "base_importance", "hybrid"]
    assert baseline_run_models("mdm_soft_truncation", cfg) == [
        "t0-200_i6_soft_truncation", "t200-600_i12_soft_truncation", "t600-1000_i12_soft_truncation"]
    assert baseline_run_models("mdm_p2w", cfg) == ["t0-100_i3_p2w", "t100-800_i21_p2w", "t800-1000_i6_p2w"]
    assert baseline_run_models("hybrid", cfg) == ["t0-1000_i30", "t800-1000_i6"]
    assert run_routing("hybrid", cfg) == [[0, 800], [800, 1000]] and run_routing("mdm_adm", cfg) is None


def _checkpoint(tmp_path, cfg, interval: Interval, name: str):
    schedule = NoiseSchedule.from_name("cosine", 1000)
    state = new_state(cfg, 1, torch.device("cpu"), make_sampler("adm", interval, schedule))
    job = TrainJob(name, interval, 1, snapshot_steps(1, 1))
    path = tmp_path / f"{name}.pt"
    save_checkpoint(path, checkpoint_payload(cfg, job, state, with_optimizer=False))
    return path


def test_the_hybrid_routes_tau_a_to_the_expert_and_the_rest_to_the_baseline(tmp_path, cfg):
    baseline = _checkpoint(tmp_path, cfg, Interval(0, 1000), "baseline")
    expert = _checkpoint(tmp_path, cfg, Interval(800, 1000), "expert")
    mixture = mixture_from_checkpoints([baseline, expert], [[0, 800], [800, 1000]])
    t = torch.tensor([0, 450, 799, 800, 999])
    assert mixture.expert_index(t).tolist() == [0, 0, 0, 1, 1]
    x = torch.randn(5, 1, 8, 8)
    out = mixture(x, t)
    assert torch.equal(out[:3], mixture.experts[0](x[:3], t[:3]))
    assert torch.equal(out[3:], mixture.experts[1](x[3:], t[3:]))
    with pytest.raises(CheckpointError, match="cannot serve"):  # an expert outside its training range
        mixture_from_checkpoints([baseline, expert], [[0, 700], [700, 1000]])
