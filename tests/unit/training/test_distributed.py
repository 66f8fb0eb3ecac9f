"""Data-parallel training of one model (torchrun, gloo on the CPU) against one process."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mdmlib.config import load_config
from mdmlib.training.checkpoint import load_checkpoint
from mdmlib.training.distributed import DataParallel, launch_data_parallel
from mdmlib.training.job import train_job
from mdmlib.training.loop import run_training

# Dropout off: with it, each process draws its own slice's masks and the runs differ by design.
TINY = {
    "model": {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
              "attention_resolutions": [4], "channels_per_head": 4, "dropout": 0.0},
    "training": {"baseline_iterations": 12, "batch_size": 8, "log_every": 2, "checkpoint_every": 4,
                 "eval_points": 2, "loss_bins": 4, "threads": 2, "data_parallel": 2, "recipe": "importance"},
}
MODEL = "t0-1000_i12_importance"  # the loss-aware sampler needs the gathered global losses


def test_a_process_trains_on_its_slice_of_the_global_batch():
    assert [DataParallel(r, 4).part(8) for r in range(4)] == [slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 8)]
    assert DataParallel(0, 2).writes and not DataParallel(1, 2).writes


def test_the_batch_must_split_evenly_over_the_processes():
    with pytest.raises(ValueError, match="training.data_parallel"):
        load_config({**TINY, "training": {**TINY["training"], "data_parallel": 3}})


def test_two_gloo_processes_follow_the_single_process_loss_curve(tmp_path):
    rng = np.random.default_rng(0)
    train = tmp_path / "train.npz"
    np.savez(train, images=rng.integers(0, 256, size=(32, 1, 8, 8), dtype=np.uint8),
             labels=np.zeros(32, dtype=np.int64))
    cfg = load_config(TINY)
    launch_data_parallel(cfg.to_dict(), MODEL, train, tmp_path / "ddp", processes=2, threads=2,
                         log_path=tmp_path / "ddp.log")
    assert "data-parallel over 2 processes" in (tmp_path / "ddp.log").read_text()
    torch.set_num_threads(1)
    with np.load(train) as f:
        images = f["images"]
    single = run_training(cfg, train_job(MODEL, cfg), images, tmp_path / "one", torch.device("cpu"),
                          log=lambda s: None)
    ddp = load_checkpoint(tmp_path / "ddp" / "latest.pt")
    assert ddp["step"] == single.step == 12
    # Same global batches (indices, timesteps, noise), so the same losses up to summation order.
    assert [(r["step"], r["t_lo"], r["count"]) for r in ddp["loss_rows"]] == \
        [(r["step"], r["t_lo"], r["count"]) for r in single.loss_rows]
    np.testing.assert_allclose([r["loss"] for r in ddp["loss_rows"]], [r["loss"] for r in single.loss_rows],
                               rtol=1e-4)
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp["model"][key], value, rtol=1e-4, atol=1e-5, msg=key)
    history = single.sampler.state_dict()  # every process saw the global batch's losses
    assert torch.equal(ddp["sampler"]["counts"], history["counts"])
    torch.testing.assert_close(ddp["sampler"]["losses"], history["losses"], rtol=1e-4, atol=1e-6)
