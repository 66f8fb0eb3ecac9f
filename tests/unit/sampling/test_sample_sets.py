"""Disjoint sample sets: the seeds of set s, several sets in one file, and a set drawn alone or
beside others giving the same images (what pairs two runs set by set)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mdmlib.config import SamplingConfig, load_config
from mdmlib.core.intervals import Interval
from mdmlib.sampling.points import (
    SAMPLE_KEYS,
    load_samples,
    sample_point,
    set_seeds,
    split_sets,
)
from mdmlib.training.job import TrainJob
from mdmlib.training.loop import run_training, snapshot_path

TINY = {"model": {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "attention_resolutions": [4],
                  "channels_per_head": 4, "dropout": 0.0},
        "training": {"baseline_iterations": 2, "batch_size": 4, "log_every": 1, "checkpoint_every": 1,
                     "eval_points": 1, "loss_bins": 2, "threads": 1}}
SAMPLING = SamplingConfig(steps=2, num_samples=3, batch_size=3, seed=10)


def test_set_s_takes_the_next_block_of_seeds():
    assert set_seeds(SAMPLING, 0) == [10, 11, 12] and set_seeds(SAMPLING, 2) == [16, 17, 18]


def test_a_set_drawn_alone_or_beside_others_gives_the_same_images(tmp_path):
    cfg = load_config(TINY)
    images = np.random.default_rng(0).integers(0, 256, size=(8, 1, 8, 8), dtype=np.uint8)
    run_training(cfg, TrainJob("m", Interval(0, 1000), 2, (2,)), images, tmp_path / "state", torch.device("cpu"),
                 log=lambda s: None)
    checkpoint = [snapshot_path(tmp_path / "state", 2)]
    sample_point(checkpoint, SAMPLING, tmp_path / "alone.npz", torch.device("cpu"), log=lambda s: None,
                 seed_sets=[2])
    sample_point(checkpoint, SAMPLING, tmp_path / "both.npz", torch.device("cpu"), log=lambda s: None,
                 seed_sets=[1, 2])
    alone, both = load_samples(tmp_path / "alone.npz"), load_samples(tmp_path / "both.npz")
    assert both["seed_sets"].tolist() == [1, 1, 1, 2, 2, 2] and both["seeds"].tolist() == list(range(13, 19))
    sets = split_sets(both)
    assert list(sets) == [1, 2] and np.array_equal(sets[2], alone["images"])
    assert not np.array_equal(sets[1], sets[2])  # other seeds, other images


def test_a_truncated_or_malformed_sample_file_is_refused_with_its_path(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, images=np.zeros((3, 1, 8, 8), np.uint8), seeds=np.arange(3), seed_sets=np.zeros(3, np.int64),
             **{k: np.zeros(1) for k in SAMPLE_KEYS if k not in ("images", "seeds")})
    assert len(load_samples(good)["images"]) == 3
    data = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[:len(data) // 2])  # a job killed mid-write, had the write not been atomic
    with pytest.raises(ValueError, match=f"sample file {truncated}: unreadable"):
        load_samples(truncated)
    floats = tmp_path / "floats.npz"
    np.savez(floats, images=np.zeros((3, 1, 8, 8), np.float32), seeds=np.arange(3))
    with pytest.raises(ValueError, match=f"sample file {floats}: malformed"):
        load_samples(floats)
