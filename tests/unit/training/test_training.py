"""The training loop: exact resume, self-describing checkpoints, logs and timings."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mdmlib.config import load_config
from mdmlib.core.intervals import Interval
from mdmlib.routing.mixture import mixture_from_checkpoints
from mdmlib.training.checkpoint import CheckpointError, load_checkpoint
from mdmlib.training.job import TrainJob, snapshot_steps
from mdmlib.training.loop import run_training, snapshot_path, write_training_outputs

TINY = {
    "model": {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
              "attention_resolutions": [4], "channels_per_head": 4, "dropout": 0.1},
    "training": {"baseline_iterations": 12, "batch_size": 8, "log_every": 2, "checkpoint_every": 4,
                 "eval_points": 3, "loss_bins": 4, "threads": 1},
}


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(32, 1, 8, 8), dtype=np.uint8)


def tiny_job(iterations=12, interval=Interval(100, 800)):
    return TrainJob("expert_2", interval, iterations, snapshot_steps(iterations, 3))


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_snapshot_steps_are_evenly_spaced_and_end_at_the_budget():
    assert snapshot_steps(12, 3) == (4, 8, 12)
    assert snapshot_steps(2, 3) == (1, 1, 2)  # tiny budgets repeat a step rather than skip a point


def test_resumed_run_equals_uninterrupted_run(tmp_path, images):
    torch.set_num_threads(1)
    cfg, job, device = load_config(TINY), tiny_job(), torch.device("cpu")
    whole = run_training(cfg, job, images, tmp_path / "whole", device, log=lambda s: None)
    run_training(cfg, job, images, tmp_path / "split", device, log=lambda s: None, stop_after=4)
    assert load_checkpoint(tmp_path / "split" / "latest.pt")["step"] == 4
    logs = []
    resumed = run_training(cfg, job, images, tmp_path / "split", device, log=logs.append)
    assert any("resumed at step 4" in line for line in logs)
    assert states_equal(whole.model.state_dict(), resumed.model.state_dict())
    assert states_equal(whole.ema.state_dict(), resumed.ema.state_dict())
    assert [r["loss"] for r in whole.loss_rows] == [r["loss"] for r in resumed.loss_rows]
    assert resumed.restarts == 1 and whole.restarts == 0
    for step in job.snapshot_steps:
        a = load_checkpoint(snapshot_path(tmp_path / "whole", step))
        b = load_checkpoint(snapshot_path(tmp_path / "split", step))
        assert a["step"] == b["step"] == step
        assert states_equal(a["ema"], b["ema"])


def test_changed_budget_does_not_resume_a_stale_state(tmp_path, images):
    cfg = load_config(TINY)
    run_training(cfg, tiny_job(12), images, tmp_path, torch.device("cpu"), log=lambda s: None, stop_after=4)
    logs = []
    state = run_training(cfg, tiny_job(8), images, tmp_path, torch.device("cpu"), log=logs.append)
    assert any("starting afresh" in line for line in logs)
    assert state.step == 8 and state.restarts == 0


def test_outputs_hold_snapshots_logs_and_timings(tmp_path, images):
    cfg, job = load_config(TINY), tiny_job()
    run_training(cfg, job, images, tmp_path / "state", torch.device("cpu"), log=lambda s: None)
    outs = [tmp_path / f"point_{i}.pt" for i in (1, 2, 3)]
    write_training_outputs(tmp_path / "state", job, outs, tmp_path / "loss.csv", tmp_path / "timing.csv")
    steps = [load_checkpoint(p)["step"] for p in outs]
    assert steps == [4, 8, 12]
    assert "optimizer" not in load_checkpoint(outs[0])  # snapshots are for sampling only
    loss = pd.read_csv(tmp_path / "loss.csv")
    # Only the expert's own interval (100, 800] is trained: bins of width 250 from 0 to 1000.
    assert set(loss["t_lo"]) <= {0, 250, 500, 750} and (loss["t_lo"] < 800).all() and (loss["t_hi"] > 100).all()
    assert np.isfinite(loss["loss"]).all() and (loss["count"] > 0).all()
    timing = pd.read_csv(tmp_path / "timing.csv")
    assert list(timing["step"]) == [2, 4, 6, 8, 10, 12]
    assert (timing["interval_seconds"] > 0).all()
    assert np.allclose(timing["elapsed_seconds"], timing["interval_seconds"].cumsum())
    snap_seconds = [load_checkpoint(p)["elapsed_seconds"] for p in outs]
    assert snap_seconds == sorted(snap_seconds) and snap_seconds[-1] <= timing["elapsed_seconds"].iloc[-1] + 1e-6


def test_unfinished_run_is_not_published(tmp_path, images):
    cfg, job = load_config(TINY), tiny_job()
    run_training(cfg, job, images, tmp_path, torch.device("cpu"), log=lambda s: None, stop_after=4)
    with pytest.raises(RuntimeError, match="stopped at step 4 of 12"):
        write_training_outputs(tmp_path, job, [tmp_path / "a.pt"] * 3, tmp_path / "l.csv", tmp_path / "t.csv")


def test_corrupt_or_foreign_checkpoints_are_refused(tmp_path, images):
    cfg = load_config(TINY)
    run_training(cfg, tiny_job(4), images, tmp_path, torch.device("cpu"), log=lambda s: None)
    good = (tmp_path / "latest.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pt"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "missing.pt")


def test_a_resume_refuses_a_corrupt_state_rather_than_restarting_silently(tmp_path, images):
    cfg = load_config(TINY)
    run_training(cfg, tiny_job(12), images, tmp_path, torch.device("cpu"), log=lambda s: None, stop_after=4)
    latest = tmp_path / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="latest.pt"):
        run_training(cfg, tiny_job(12), images, tmp_path, torch.device("cpu"), log=lambda s: None)


def test_checkpoints_of_experts_compose_into_a_routed_mixture(tmp_path, images):
    cfg = load_config(TINY)
    paths = []
    for name, interval in (("expert_1", Interval(0, 300)), ("expert_2", Interval(300, 1000))):
        job = TrainJob(name, interval, 2, (2,))
        run_training(cfg, job, images, tmp_path / name, torch.device("cpu"), log=lambda s: None)
        paths.append(snapshot_path(tmp_path / name, 2))
    mixture = mixture_from_checkpoints(paths[::-1])  # order of the files does not matter
    assert [i.to_list() for i in mixture.intervals] == [[0, 300], [300, 1000]]
    x = torch.randn(2, 1, 8, 8)
    t = torch.tensor([10, 900])
    with torch.no_grad():
        out = mixture(x, t)
        assert torch.equal(out[:1], mixture.experts[0](x[:1], t[:1]))
        assert torch.equal(out[1:], mixture.experts[1](x[1:], t[1:]))


def test_short_run_is_the_snapshot_of_a_longer_one(tmp_path, images):
    """Why the pipeline may serve a k-step model from a longer model's step-k snapshot
    (mdmlib.training.job.snapshot_source): nothing in training depends on the budget."""
    torch.set_num_threads(1)
    cfg, device = load_config(TINY), torch.device("cpu")
    short = run_training(cfg, tiny_job(iterations=4), images, tmp_path / "short", device, log=lambda s: None)
    run_training(cfg, tiny_job(iterations=12), images, tmp_path / "long", device, log=lambda s: None)
    snapshot = load_checkpoint(snapshot_path(tmp_path / "long", 4))
    assert snapshot["step"] == short.step == 4
    assert states_equal(snapshot["ema"], short.ema.state_dict())
    assert states_equal(snapshot["model"], short.model.state_dict())
