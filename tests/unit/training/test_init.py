"""Training from another model's checkpoint: a base model fine-tuned on one interval."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_training import TINY, states_equal

from mdmlib.config import load_config
from mdmlib.core.intervals import Interval
from mdmlib.training.checkpoint import load_checkpoint
from mdmlib.training.job import TrainJob
from mdmlib.training.loop import run_training, snapshot_path

CPU = torch.device("cpu")


@pytest.fixture
def trained_base(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(32, 1, 8, 8), dtype=np.uint8)
    cfg = load_config(TINY)
    run_training(cfg, TrainJob("base", Interval(0, 1000), 4, (2, 4)), images, tmp_path / "base", CPU,
                 log=lambda line: None)
    return cfg, images, tmp_path / "base" / "latest.pt"


def test_fine_tuning_starts_from_the_raw_and_ema_weights_and_trains_on_its_interval(trained_base, tmp_path):
    cfg, images, base = trained_base
    job = TrainJob("tuned", Interval(800, 1000), 4, (2, 4))
    start = run_training(cfg, job, images, tmp_path / "tuned", CPU, log=lambda line: None, stop_after=0, init=base)
    base_ckpt = load_checkpoint(base)
    assert states_equal(start.model.state_dict(), base_ckpt["model"])
    assert states_equal(start.ema.state_dict(), base_ckpt["ema"])
    assert not states_equal(base_ckpt["model"], base_ckpt["ema"])  # two different starting points
    state = run_training(cfg, job, images, tmp_path / "tuned", CPU, log=lambda line: None, init=base)
    t = torch.tensor([r["t_lo"] for r in state.loss_rows])
    assert state.step == 4 and (t >= 750).all()  # loss bins of width 250: only (800, 1000] trained
    snapshot = load_checkpoint(snapshot_path(tmp_path / "tuned", 4))
    assert snapshot["init"] == {"path": str(base), "name": "base", "step": 4}
    assert snapshot["model_spec"] == base_ckpt["model_spec"]


def test_a_different_initial_checkpoint_does_not_resume(trained_base, tmp_path):
    cfg, images, base = trained_base  # checkpoints every 4 steps
    job = TrainJob("tuned", Interval(800, 1000), 8, (4, 8))
    run_training(cfg, job, images, tmp_path / "tuned", CPU, log=lambda line: None, stop_after=4, init=base)
    logs = []
    run_training(cfg, job, images, tmp_path / "tuned", CPU, log=logs.append, stop_after=4)  # a fresh model now
    assert any("different initial checkpoint" in line and "starting afresh" in line for line in logs)
    logs.clear()
    run_training(cfg, job, images, tmp_path / "tuned", CPU, log=logs.append, stop_after=4, init=base)
    run_training(cfg, job, images, tmp_path / "tuned", CPU, log=logs.append, init=base)
    assert sum("starting afresh" in line for line in logs) == 1 and any("resumed at step 4" in line for line in logs)


def test_a_pruned_models_fine_tune_resumes_after_a_kill_to_the_uninterrupted_weights(trained_base, tmp_path):
    from mdmlib.pruning.group import prune_for_group

    cfg, images, base = trained_base
    group = Interval(0, 300)
    report = prune_for_group(base, "magnitude", group, 0.75, images, images, cfg, "pruned", tmp_path / "pruned.pt",
                             tmp_path / "pruned.json", tmp_path / "audit", log=lambda line: None)
    assert report["macs"] <= 0.75 * report["full_macs"]
    job = TrainJob("tdc_magnitude_b4_t0-300_f750_i8", group, 8, (4, 8))
    whole = run_training(cfg, job, images, tmp_path / "whole", CPU, log=lambda line: None, init=tmp_path / "pruned.pt")
    run_training(cfg, job, images, tmp_path / "killed", CPU, log=lambda line: None, stop_after=4,
                 init=tmp_path / "pruned.pt")  # stands for kill -9 after the step-4 checkpoint
    logs = []
    resumed = run_training(cfg, job, images, tmp_path / "killed", CPU, log=logs.append, init=tmp_path / "pruned.pt")
    assert any("resumed at step 4" in line for line in logs)
    assert resumed.model.spec == whole.model.spec and resumed.model.spec["arguments"]["block_widths"] \
        == report["widths"]["block_widths"]  # the pruned shape, rebuilt from the checkpoint
    assert states_equal(resumed.model.state_dict(), whole.model.state_dict())
    assert states_equal(resumed.ema.state_dict(), whole.ema.state_dict())


@pytest.mark.parametrize("stage", ["depth", "width"])
def test_an_elastic_stage_draws_sub_networks_and_resumes_after_a_kill_bit_for_bit(trained_base, tmp_path, stage):
    """DiffPruning's elastic fine-tune: the base model's weights in the elastic U-Net, a random
    sub-network per batch from the global generator, which the resumable state carries."""
    from mdmlib.training.job import elastic_spec

    cfg, images, base = trained_base
    spec = elastic_spec(cfg, stage, 0.5)
    job = TrainJob(f"dp{stage[0]}_t0-300_b4_p500_i8", Interval(0, 300), 8, (4, 8), model_spec=spec)
    whole = run_training(cfg, job, images, tmp_path / "whole", CPU, log=lambda line: None, init=base)
    assert whole.model.spec == spec and whole.step == 8
    run_training(cfg, job, images, tmp_path / "killed", CPU, log=lambda line: None, stop_after=4, init=base)
    logs = []
    resumed = run_training(cfg, job, images, tmp_path / "killed", CPU, log=logs.append, init=base)
    assert any("resumed at step 4" in line for line in logs)
    assert states_equal(resumed.model.state_dict(), whole.model.state_dict())
    assert states_equal(resumed.ema.state_dict(), whole.ema.state_dict())
    # the sub-networks differ from the whole network: training elastically is not training it plain
    plain = run_training(cfg, TrainJob("plain", Interval(0, 300), 8, (4, 8)), images, tmp_path / "plain", CPU,
                         log=lambda line: None, init=base)
    assert not states_equal(plain.model.state_dict(), whole.model.state_dict())
