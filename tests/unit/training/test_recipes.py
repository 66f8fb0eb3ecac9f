"""Training recipes (ADM, P2W, soft truncation, importance sampling) in the real training loop."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from test_training import TINY, states_equal

from mdmlib.config import load_config
from mdmlib.core.images import to_model_range
from mdmlib.core.intervals import Interval
from mdmlib.core.schedule import NoiseSchedule, epsilon_loss_per_sample
from mdmlib.models.registry import new_model
from mdmlib.training.checkpoint import CheckpointError, load_checkpoint
from mdmlib.training.job import RECIPES, TrainJob, snapshot_steps
from mdmlib.training.loop import run_training, snapshot_path, update_ema

CPU = torch.device("cpu")
QUIET = lambda s: None  # noqa: E731


def tiny_cfg(**training):
    return load_config({**TINY, "training": {**TINY["training"], "checkpoint_every": 2, **training}})


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(32, 1, 8, 8), dtype=np.uint8)


def recipe_job(recipe: str, iterations: int = 8, interval: Interval = Interval(100, 800)) -> TrainJob:
    return TrainJob(f"expert_{recipe}", interval, iterations, snapshot_steps(iterations, 2), recipe)


def legacy_uniform_run(cfg, job, images):
    """The training loop as it was before recipes: uniform t, unweighted loss, same RNG order."""
    torch.manual_seed(cfg.training.seed)
    model = new_model(cfg.model, images.shape[1], cfg.data.resolution)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.training.learning_rate)
    g = torch.Generator().manual_seed(cfg.training.seed)
    schedule = NoiseSchedule.from_name(cfg.diffusion.schedule, cfg.diffusion.timesteps)
    x, bs = to_model_range(images), cfg.training.batch_size
    for step in range(1, job.iterations + 1):
        model.train()
        idx = torch.randint(len(x), (bs,), generator=g)
        t = torch.randint(job.interval.lo, job.interval.hi, (bs,), generator=g)
        noise = torch.randn((bs, *x.shape[1:]), generator=g)
        loss = epsilon_loss_per_sample(model, schedule, x[idx], t, noise).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        update_ema(ema, model, cfg.training.ema_decay, step)
    return model, ema


def test_adm_recipe_trains_bit_identically_to_the_uniform_code_path(tmp_path, images):
    torch.set_num_threads(1)
    cfg, job = tiny_cfg(), recipe_job("adm")
    assert TrainJob("baseline", Interval(0, 1000), 8, (8,)).recipe == "adm"  # the default
    model, ema = legacy_uniform_run(cfg, job, images)
    state = run_training(cfg, job, images, tmp_path, CPU, log=QUIET)
    assert states_equal(model.state_dict(), state.model.state_dict())
    assert states_equal(ema.state_dict(), state.ema.state_dict())


def interval_for(recipe: str) -> Interval:
    # Two timesteps x 10 losses: the importance sampler warms up within the run, so the
    # resume crosses from uniform to loss-aware sampling with a half-filled history.
    return Interval(100, 102) if recipe == "importance" else Interval(100, 800)


@pytest.mark.parametrize("recipe", RECIPES)
def test_each_recipe_trains_and_resumes_bit_identically(tmp_path, images, recipe):
    torch.set_num_threads(1)
    cfg, job = tiny_cfg(), recipe_job(recipe, interval=interval_for(recipe))
    whole = run_training(cfg, job, images, tmp_path / "whole", CPU, log=QUIET)
    run_training(cfg, job, images, tmp_path / "split", CPU, log=QUIET, stop_after=2)
    killed = load_checkpoint(tmp_path / "split" / "latest.pt")
    assert killed["step"] == 2 and killed["recipe"] == recipe
    logs = []
    resumed = run_training(cfg, job, images, tmp_path / "split", CPU, log=logs.append)
    assert any("resumed at step 2" in line for line in logs)
    assert states_equal(whole.model.state_dict(), resumed.model.state_dict())
    assert states_equal(whole.ema.state_dict(), resumed.ema.state_dict())
    assert [r["loss"] for r in whole.loss_rows] == [r["loss"] for r in resumed.loss_rows]
    assert all(np.isfinite(r["loss"]) and r["t_lo"] < job.interval.hi and r["t_hi"] > job.interval.lo
               for r in resumed.loss_rows)
    for step in job.snapshot_steps:
        snap = load_checkpoint(snapshot_path(tmp_path / "split", step))
        assert snap["recipe"] == recipe
        assert states_equal(snap["ema"], load_checkpoint(snapshot_path(tmp_path / "whole", step))["ema"])
    if recipe == "importance":
        counts = killed["sampler"]["counts"]
        assert 0 < counts.sum() < counts.numel() * 10  # killed with the history in flight
        assert resumed.sampler.warmed_up()
        assert torch.equal(whole.sampler.losses, resumed.sampler.losses)


def test_recipes_weight_the_gradient_but_log_the_unweighted_loss(tmp_path, images):
    torch.set_num_threads(1)
    cfg = tiny_cfg(log_every=1)
    runs = {r: run_training(cfg, recipe_job(r, iterations=1, interval=Interval(0, 1000)), images,
                            tmp_path / r, CPU, log=QUIET) for r in ("adm", "p2w")}
    # Same initial weights, timesteps and noise: the logged epsilon MSE agrees exactly...
    assert runs["adm"].loss_rows == runs["p2w"].loss_rows
    # ...while the P2W weights changed the step taken.
    assert not states_equal(runs["adm"].model.state_dict(), runs["p2w"].model.state_dict())


def test_a_different_recipe_is_not_resumed(tmp_path, images):
    cfg = tiny_cfg()
    run_training(cfg, recipe_job("p2w"), images, tmp_path, CPU, log=QUIET, stop_after=2)
    logs = []
    state = run_training(cfg, recipe_job("adm"), images, tmp_path, CPU, log=logs.append)
    assert any("different recipe (p2w before, adm now); starting afresh" in line for line in logs)
    assert state.step == 8 and state.restarts == 0
    assert load_checkpoint(tmp_path / "latest.pt")["recipe"] == "adm"


def test_checkpoints_of_earlier_formats_are_refused_with_the_file_named(tmp_path, images):
    """Format v2 rebuilds the model from its spec; a v1 file (model rebuilt from config.model, recipe
    optional) is refused rather than guessed at, and so is a v2 file without its recipe."""
    cfg, job = tiny_cfg(), recipe_job("adm")
    run_training(cfg, job, images, tmp_path, CPU, log=QUIET, stop_after=2)
    latest = tmp_path / "latest.pt"
    current = torch.load(latest, weights_only=True)
    v1 = {k: v for k, v in current.items() if k not in ("model_spec", "recipe", "sampler", "init")}
    torch.save({**v1, "format": "mdmlib.diffusion_checkpoint/v1"}, latest)
    with pytest.raises(CheckpointError, match="latest.pt: not an mdmlib.diffusion_checkpoint/v2 file"):
        load_checkpoint(latest)
    torch.save({k: v for k, v in current.items() if k != "recipe"}, latest)
    with pytest.raises(CheckpointError, match=r"missing fields \['recipe'\]"):
        load_checkpoint(latest)
    with pytest.raises(CheckpointError, match="latest.pt"):
        run_training(cfg, job, images, tmp_path, CPU, log=QUIET)


def test_an_unknown_recipe_is_refused():
    with pytest.raises(ValueError, match="unknown training recipe 'p2'"):
        recipe_job("p2")
