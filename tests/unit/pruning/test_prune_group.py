"""A group's prune job: the pruned checkpoint rebuilds its model alone, every method meets the FLOPs
limit, and an unreachable limit writes nothing."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from mdmlib.config import load_config
from mdmlib.core.images import to_model_range
from mdmlib.core.intervals import Interval
from mdmlib.core.schedule import NoiseSchedule
from mdmlib.models.macs import count_parameters, forward_macs
from mdmlib.models.registry import new_model
from mdmlib.models.unet import layer_widths
from mdmlib.pruning.criteria import pruning_methods
from mdmlib.pruning.group import RecoveredLoss, prune_for_group
from mdmlib.pruning.importance import layer_scores
from mdmlib.pruning.prune import prune_unet
from mdmlib.pruning.scheme import macs_counter, spec_macs, unet_shape, uniform_scheme
from mdmlib.training.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)

torch.set_num_threads(1)

INTERVAL = Interval(0, 250)
METHODS = ("random", "magnitude", "taylor", "diff_pruning", "proxy")
ROUNDS, CANDIDATES = 1, 2


def quiet(line: str) -> None:
    pass


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The config with a small U-Net and a tiny proxy search, a base checkpoint of it (every weight
    perturbed, so every channel matters), and uint8 training and validation images."""
    r = dataclasses.replace
    cfg = load_config("config.yaml")
    cfg = r(cfg, model=r(cfg.model, base_channels=16, channels_per_head=8),
            training=r(cfg.training, batch_size=8),
            tdc=r(cfg.tdc, importance_images=8,
                  proxy=r(cfg.tdc.proxy, proposer="offline", rounds=ROUNDS, candidates=CANDIDATES, recovery_steps=1,
                          eval_images=8)))
    torch.manual_seed(0)
    model = new_model(cfg.model, 1, 8)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.05)
    weights = model.state_dict()
    path = tmp_path_factory.mktemp("base") / "base.pt"
    save_checkpoint(path, {"model_spec": model.spec, "config": cfg.to_dict(), "name": "base", "in_channels": 1,
                           "resolution": 8, "interval": [0, 1000], "recipe": "adm", "step": 12, "model": weights,
                           "ema": weights})
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (16, 1, 8, 8), dtype=np.uint8)
    val = rng.integers(0, 256, (8, 1, 8, 8), dtype=np.uint8)
    return cfg, path, train, val


def run(base, method, limit, folder):
    cfg, path, train, val = base
    return prune_for_group(path, method, INTERVAL, limit, train, val, cfg, f"{method}_{limit}", folder / "pruned.pt",
                           folder / "report.json", folder / "audit", log=quiet)


def test_every_pruning_method_is_tested():
    assert set(pruning_methods()) == set(METHODS)


def test_pruned_checkpoint_alone_rebuilds_the_in_memory_pruned_model(base, tmp_path):
    cfg, path, train, val = base
    report = run(base, "magnitude", 0.75, tmp_path)
    ckpt = load_checkpoint(tmp_path / "pruned.pt")
    rebuilt = model_from_checkpoint(ckpt)
    # in memory: the base model pruned to the report's widths by its magnitude scores
    model = model_from_checkpoint(load_checkpoint(path))
    schedule = NoiseSchedule.from_name(cfg.diffusion.schedule, cfg.diffusion.timesteps)
    scores, _ = layer_scores(model, "magnitude", schedule, torch.zeros(1, 1, 8, 8), INTERVAL, cfg.training.seed)
    pruned = prune_unet(model, report["widths"], scores)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 60, 170, 249])
    with torch.no_grad():
        assert torch.equal(rebuilt(x, t), pruned(x, t))
        assert not torch.allclose(rebuilt(x, t), model(x, t), atol=1e-4)
    assert ckpt["model_spec"] == pruned.spec and ckpt["model_spec"]["arguments"]["block_widths"] == \
        report["widths"]["block_widths"]
    assert layer_widths(rebuilt) == report["widths"]
    assert report["parameters"] == count_parameters(rebuilt) < report["base_parameters"] == count_parameters(model)
    assert report["macs"] == spec_macs(ckpt["model_spec"]) == forward_macs(rebuilt, x[:1], t[:1])
    assert report["full_macs"] == spec_macs(model.spec)
    assert ckpt["interval"] == [0, 250] and ckpt["init"]["name"] == "base" and ckpt["step"] == 12
    assert json.loads((tmp_path / "report.json").read_text()) == report


@pytest.mark.parametrize("limit", [0.625, 0.75, 0.875])
@pytest.mark.parametrize("method", METHODS)
def test_every_method_meets_the_flops_limit(base, tmp_path, method, limit):
    report = run(base, method, limit, tmp_path)
    rebuilt = model_from_checkpoint(load_checkpoint(tmp_path / "pruned.pt"))
    one = (torch.zeros(1, 1, 8, 8), torch.zeros(1, dtype=torch.long))
    assert report["method"] == method and report["limit_ratio"] == limit
    assert forward_macs(rebuilt, *one) == report["macs"] <= limit * report["full_macs"]
    assert report["macs_ratio"] == report["macs"] / report["full_macs"]
    assert layer_widths(rebuilt) == report["widths"]
    full = report["full_widths"]
    assert all(w <= f for w, f in zip(report["widths"]["block_widths"], full["block_widths"]))
    assert all(h <= f for h, f in zip(report["widths"]["attention_heads"], full["attention_heads"]))
    assert torch.isfinite(rebuilt(torch.randn(2, 1, 8, 8), torch.tensor([3, 200]))).all()
    if method == "proxy":
        bank = json.loads((tmp_path / "audit" / "memory_bank.json").read_text())
        assert report["search"]["evaluated"] == len(bank) == ROUNDS * CANDIDATES
        assert min(e["loss"] for e in bank) == report["search"]["best_loss"]
        assert all(e["macs_ratio"] <= limit for e in bank)
        description = json.loads((tmp_path / "audit" / "description.json").read_text())
        assert description["macs_limit"] == int(limit * report["full_macs"])
    else:
        assert report["search"] is None and not (tmp_path / "audit").exists()
        # a criterion prunes every layer by the same share: layers of one width keep one width
        kept = {}
        for w, f in zip(report["widths"]["block_widths"], full["block_widths"]):
            kept.setdefault(f, set()).add(w)
        assert all(len(widths) == 1 for widths in kept.values())
        assert len(set(report["widths"]["attention_heads"])) == 1


@pytest.mark.parametrize("method", METHODS)
def test_an_unreachable_limit_is_refused_and_nothing_is_written(base, tmp_path, method):
    with pytest.raises(ValueError, match="min_flops_ratio"):
        run(base, method, 0.1, tmp_path)
    assert not (tmp_path / "pruned.pt").exists()
    assert not (tmp_path / "report.json").exists()
    assert not (tmp_path / "audit").exists()


def test_a_schemes_recovered_loss_is_the_same_whatever_the_global_generator(base):
    """The proxy's recovery steps train with dropout (config model.dropout), which draws from the
    global generator: the score seeds it, so the search (and the scheme kept) is the same on every run."""
    cfg, path, train, val = base
    assert cfg.model.dropout > 0
    model = model_from_checkpoint(load_checkpoint(path))
    shape = unet_shape(model)
    schedule = NoiseSchedule.from_name(cfg.diffusion.schedule, cfg.diffusion.timesteps)
    scores, _ = layer_scores(model, "magnitude", schedule, torch.zeros(1, 1, 8, 8), INTERVAL, cfg.training.seed)
    scheme = uniform_scheme(0.75 * spec_macs(model.spec), macs_counter(model.spec, shape), shape)
    score = RecoveredLoss(model, shape, scores, schedule, INTERVAL, to_model_range(train), to_model_range(val),
                          steps=2, batch_size=8, lr=1e-3, seed=cfg.training.seed)
    losses = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        losses.append(score(scheme))
    assert losses[0] == losses[1]
