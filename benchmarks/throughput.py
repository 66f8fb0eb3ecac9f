"""Trainer and routing overhead: the project's training loop against a bare forward-backward-Adam loop,
and DDIM through the expert mixture against one model.
"""
from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.timing import figure, paired_ratio
from mdmlib.config import RunConfig
from mdmlib.core.adam import Adam
from mdmlib.core.images import to_model_range
from mdmlib.core.intervals import Interval, intervals_from_boundaries
from mdmlib.core.schedule import NoiseSchedule, epsilon_loss_per_sample
from mdmlib.models.registry import new_model
from mdmlib.routing.mixture import ExpertMixture
from mdmlib.sampling.ddim import ddim_sample
from mdmlib.training.job import TrainJob, snapshot_steps
from mdmlib.training.loop import run_training


def bare_training_seconds(cfg: RunConfig, images: np.ndarray, steps: int) -> float:
    """Forward, backward and Adam step only, on batches drawn the same way as the trainer's."""
    torch.manual_seed(cfg.training.seed)
    model = new_model(cfg.model, images.shape[1], cfg.data.resolution)
    optimizer = Adam(model.parameters(), lr=cfg.training.learning_rate)  # the trainer's
    schedule = NoiseSchedule.from_name(cfg.diffusion.schedule, cfg.diffusion.timesteps)
    data, gen, b = to_model_range(images), torch.Generator().manual_seed(0), cfg.training.batch_size
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(len(data), (b,), generator=gen)
        t = torch.randint(0, cfg.diffusion.timesteps, (b,), generator=gen)
        noise = torch.randn((b, *data.shape[1:]), generator=gen)
        loss = epsilon_loss_per_sample(model, schedule, data[idx], t, noise).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def trainer_seconds(cfg: RunConfig, images: np.ndarray, steps: int) -> float:
    """The project's loop (EMA, per-bin loss logging, timing, checkpoints, snapshots) from scratch."""
    job = TrainJob("benchmark", Interval(0, cfg.diffusion.timesteps), steps,
                   snapshot_steps(steps, cfg.training.eval_points))
    with tempfile.TemporaryDirectory() as state_dir:
        start = time.perf_counter()
        run_training(cfg, job, images, Path(state_dir), torch.device("cpu"), log=lambda s: None)
        return time.perf_counter() - start


def trainer_overhead(cfg: RunConfig, images: np.ndarray, steps: int, repeats: int) -> dict:
    """Steps/s of the trainer over steps/s of the bare loop (target >= 0.95)."""
    timed = paired_ratio(lambda: bare_training_seconds(cfg, images, steps),
                         lambda: trainer_seconds(cfg, images, steps), repeats)
    return {"figures": [figure("trainer throughput / bare loop throughput", timed["ratios"], target=(">=", 0.95))],
            "steps": steps, **timed}


def routing_overhead(cfg: RunConfig, channels: int, batch: int, steps: int, repeats: int) -> dict:
    """DDIM time of the expert mixture over one model of the same architecture (target <= 1.03)."""
    torch.manual_seed(0)
    single = new_model(cfg.model, channels, cfg.data.resolution).eval()
    intervals = intervals_from_boundaries(cfg.experts.boundaries, cfg.diffusion.timesteps)
    mixture = ExpertMixture([copy.deepcopy(single) for _ in intervals], intervals).eval()
    schedule = NoiseSchedule.from_name(cfg.diffusion.schedule, cfg.diffusion.timesteps)
    noise = torch.randn(batch, channels, cfg.data.resolution, cfg.data.resolution)

    def seconds(model) -> float:
        start = time.perf_counter()
        ddim_sample(model, schedule, noise, steps)
        return time.perf_counter() - start

    timed = paired_ratio(lambda: seconds(mixture), lambda: seconds(single), repeats)
    name = f"DDIM time, {len(intervals)}-expert mixture / single model"
    return {"figures": [figure(name, timed["ratios"], target=("<=", 1.03))],
            "experts": len(intervals), "batch": batch, "ddim_steps": steps, **timed}
