"""DiffPruning's stage checkpoints: the sorted depth expert keeps its function and starts the width
stage; the pruned width expert is the gated sub-network at the agent's MACs; bad input writes nothing."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from tiny_models import tiny_config

import mdmlib.pruning.experts as experts
from mdmlib.config import load_config
from mdmlib.core.intervals import Interval
from mdmlib.core.schedule import NoiseSchedule
from mdmlib.models.elastic import (
    ElasticUNet,
    SubnetGates,
    depth_layers,
    gated_forward,
    macs_table,
    sort_width_units,
    table_macs,
    unit_scores,
    width_layers,
)
from mdmlib.models.macs import count_parameters
from mdmlib.models.registry import build_model, model_spec
from mdmlib.models.unet import AttentionBlock, ResBlock, UNet
from mdmlib.pruning.experts import (
    architecture_entry,
    write_pruned_expert,
    write_sorted_expert,
)
from mdmlib.pruning.scheme import spec_macs
from mdmlib.training.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from mdmlib.training.loop import new_state
from mdmlib.training.samplers import make_sampler

INTERVAL = Interval(0, 250)
DEPTH_NAME, WIDTH_NAME = "dpd_t0-250_b12_p500_i10", "dpw_t0-250_b12_p500_d10_i10"
PRUNED_NAME = "dpf_m500_t0-250_b12_p500_d10_w10"


@pytest.fixture(scope="module")
def cfg():
    return load_config("config.yaml")


def elastic_spec(mode: str) -> dict:
    """A tiny 8x8 elastic U-Net: two ResBlocks per level (a depth layer per level and branch), attention."""
    unet = model_spec(replace(tiny_config(), num_res_blocks=2), 1, 8)
    return {"architecture": "elastic_unet", "arguments": {**unet["arguments"], "elastic": mode, "drop_probability": 0.5}}


def tiny_elastic(mode: str, seed: int = 0) -> ElasticUNet:
    """Every weight perturbed, so all units differ and matter."""
    torch.manual_seed(seed)
    model = build_model(elastic_spec(mode))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def save_snapshot(path, model, name: str, cfg) -> None:
    weights = model.state_dict()
    save_checkpoint(path, {"model_spec": model.spec, "config": cfg.to_dict(), "name": name, "in_channels": 1,
                           "resolution": 8, "interval": INTERVAL.to_list(), "recipe": "adm", "step": 10,
                           "iterations": 10, "model": {k: v + 1 for k, v in weights.items()}, "ema": weights})


def inputs(batch: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    return torch.randn(batch, 1, 8, 8, generator=generator), torch.tensor([3, 120, 249][:batch])


def width_units(model) -> list[torch.Tensor]:
    return [unit_scores(m) for m in model.modules() if isinstance(m, (ResBlock, AttentionBlock))]


def test_the_sorted_expert_keeps_the_function_and_starts_the_width_stage(tmp_path, cfg):
    depth = tiny_elastic("depth")
    snapshot, out = tmp_path / "snapshot.pt", tmp_path / "sorted" / f"{DEPTH_NAME}.pt"
    save_snapshot(snapshot, depth, DEPTH_NAME, cfg)
    report = write_sorted_expert(snapshot, out, DEPTH_NAME)
    ckpt = load_checkpoint(out)
    assert ckpt["model_spec"] == depth.spec and ckpt["step"] == 10 and ckpt["interval"] == INTERVAL.to_list()
    assert ckpt["init"] == {"path": str(snapshot), "name": DEPTH_NAME, "step": 10}
    assert all(torch.equal(ckpt["model"][k], ckpt["ema"][k]) for k in ckpt["ema"])  # raw = EMA = sorted EMA
    assert report["parameters"] == count_parameters(depth) and report["max_abs_difference"] < 1e-4
    sorted_model = model_from_checkpoint(ckpt)
    assert any(not torch.equal(ckpt["ema"][k], v) for k, v in depth.state_dict().items())  # units moved
    assert all((s.diff() <= 0).all() for s in width_units(sorted_model))
    x, t = inputs()
    with torch.no_grad():
        assert torch.allclose(sorted_model(x, t), depth(x, t), atol=1e-5)
    # the width stage: the elastic width spec of the same arguments, raw and EMA from this checkpoint
    schedule = NoiseSchedule.from_name(cfg.diffusion.schedule, cfg.diffusion.timesteps)
    state = new_state(cfg, 1, torch.device("cpu"), make_sampler("adm", INTERVAL, schedule), init=ckpt,
                      spec=elastic_spec("width"))
    assert isinstance(state.model, ElasticUNet) and state.model.elastic == "width"
    with torch.no_grad():
        assert torch.allclose(state.ema(x, t), depth(x, t), atol=1e-5)
        assert torch.equal(state.model.eval()(x, t), state.ema(x, t))


def test_a_sort_that_changes_the_function_is_refused_and_writes_nothing(tmp_path, cfg, monkeypatch):
    snapshot, out = tmp_path / "snapshot.pt", tmp_path / "sorted" / "x.pt"
    save_snapshot(snapshot, tiny_elastic("depth"), DEPTH_NAME, cfg)

    def broken(model):
        model = sort_width_units(model)
        with torch.no_grad():
            model.out[-1].bias.add_(0.1)
        return model
    monkeypatch.setattr(experts, "sort_width_units", broken)
    with pytest.raises(RuntimeError, match="outputs differ"):
        write_sorted_expert(snapshot, out, DEPTH_NAME)
    assert not out.parent.exists() or not any(out.parent.iterdir())


def prefix_gates(model, groups, heads, kept) -> SubnetGates:
    blocks, attentions = width_layers(model)
    return SubnetGates([(torch.arange(b.out_norm.num_groups) < k).float() for b, k in zip(blocks, groups)],
                       [(torch.arange(a.num_heads) < k).float() for a, k in zip(attentions, heads)],
                       [torch.tensor(float(k)) for k in kept])


def width_expert(tmp_path, cfg):
    """A sorted elastic width expert's snapshot, and a sub-network of it: fewer groups and heads."""
    model = sort_width_units(tiny_elastic("width", seed=3)).eval()
    path = tmp_path / "width.pt"
    save_snapshot(path, model, WIDTH_NAME, cfg)
    blocks, attentions = width_layers(model)
    groups = [max(1, b.out_norm.num_groups - i % 3) for i, b in enumerate(blocks)]
    heads = [max(1, a.num_heads - 1 - i % 2) for i, a in enumerate(attentions)]
    assert any(k < b.out_norm.num_groups for k, b in zip(groups, blocks))
    assert any(k < a.num_heads for k, a in zip(heads, attentions))
    return model, path, groups, heads


def write_architecture(path, model, groups, heads, kept, macs=None) -> dict:
    table = macs_table(model)
    entry = {"name": WIDTH_NAME, "interval": INTERVAL.to_list(), "groups": groups, "heads": heads, "depth": kept,
             "macs": table_macs(table, groups, heads, kept) if macs is None else macs}
    other = {**entry, "name": "dpw_t250-1000_b12_p500_d10_i10", "interval": [250, 1000], "macs": 1.0}
    architecture = {"budget": 0.5, "experts": [entry, other]}
    path.write_text(json.dumps(architecture))
    return entry


@pytest.mark.parametrize("dropped", ["encoder", "decoder"])
def test_the_pruned_expert_is_the_gated_subnetwork_at_the_agents_macs(tmp_path, cfg, dropped):
    model, snapshot, groups, heads = width_expert(tmp_path, cfg)
    kept = [layer.branch != dropped for layer in depth_layers(model)]
    assert kept.count(False) == 2
    entry = write_architecture(tmp_path / "architecture.json", model, groups, heads, kept)
    out = tmp_path / "pruned" / f"{PRUNED_NAME}.pt"
    report = write_pruned_expert(snapshot, tmp_path / "architecture.json", out, PRUNED_NAME)
    ckpt = load_checkpoint(out)
    assert ckpt["name"] == PRUNED_NAME and ckpt["step"] == 10 and ckpt["interval"] == INTERVAL.to_list()
    assert ckpt["init"] == {"path": str(snapshot), "name": WIDTH_NAME, "step": 10}
    pruned = model_from_checkpoint(ckpt)
    assert type(pruned) is UNet and ckpt["model_spec"]["architecture"] == "unet"
    assert ckpt["model_spec"]["arguments"]["dropped_layers"] == [j for j, k in enumerate(kept) if not k]
    x, t = inputs()
    with torch.no_grad():
        gated = gated_forward(model, x, t, prefix_gates(model, groups, heads, kept))
        assert torch.allclose(pruned(x, t), gated, atol=1e-5)
        assert not torch.allclose(gated, model(x, t), atol=1e-3)  # the cut matters
    assert report["parameters"] == count_parameters(pruned) < count_parameters(model) == report["base_parameters"]
    assert spec_macs(ckpt["model_spec"]) == report["macs"] == entry["macs"] < report["full_macs"]
    assert report["full_macs"] == spec_macs({"architecture": "unet", "arguments": {
        k: v for k, v in model.spec["arguments"].items() if k not in ("elastic", "drop_probability")}})
    # the fine-tune starts from it in its own shape (no spec: the checkpoint's)
    schedule = NoiseSchedule.from_name(cfg.diffusion.schedule, cfg.diffusion.timesteps)
    state = new_state(cfg, 1, torch.device("cpu"), make_sampler("adm", INTERVAL, schedule), init=ckpt)
    with torch.no_grad():
        assert torch.equal(state.ema(x, t), pruned(x, t))


def test_a_missing_interval_or_a_macs_mismatch_is_refused_and_writes_nothing(tmp_path, cfg):
    model, snapshot, groups, heads = width_expert(tmp_path, cfg)
    kept = [True, False, True, True]
    architecture, out = tmp_path / "architecture.json", tmp_path / "pruned" / f"{PRUNED_NAME}.pt"
    entry = write_architecture(architecture, model, groups, heads, kept)
    with pytest.raises(ValueError, match=r"0 experts on \[0, 100\]"):
        architecture_entry(json.loads(architecture.read_text()), Interval(0, 100))
    assert architecture_entry(json.loads(architecture.read_text()), INTERVAL) == entry
    absent = json.loads(architecture.read_text())
    absent["experts"] = absent["experts"][1:]
    (tmp_path / "absent.json").write_text(json.dumps(absent))
    with pytest.raises(ValueError, match="0 experts on"):
        write_pruned_expert(snapshot, tmp_path / "absent.json", out, PRUNED_NAME)
    write_architecture(architecture, model, groups, heads, kept, macs=entry["macs"] + 1)
    with pytest.raises(ValueError, match="MACs"):
        write_pruned_expert(snapshot, architecture, out, PRUNED_NAME)
    renamed = json.loads((tmp_path / "absent.json").read_text())
    renamed["experts"] = [{**entry, "name": "dpw_t0-250_b12_p500_d20_i10"}]
    architecture.write_text(json.dumps(renamed))
    with pytest.raises(ValueError, match="chose for expert"):
        write_pruned_expert(snapshot, architecture, out, PRUNED_NAME)
    assert not out.parent.exists() or not any(out.parent.iterdir())
