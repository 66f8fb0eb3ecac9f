"""What a config asks the pipeline to train and evaluate: names, intervals, budgets.

The Snakefile and the workflow scripts both read this, so a model's interval and
budget are decided in one place.
"""
from __future__ import annotations

import torch

from .config import RunConfig
from .gpu_slots import pin_to_free_gpu
from .experts import Interval, expert_budgets, intervals_from_boundaries
from .training import TrainJob, snapshot_steps


def expert_intervals(cfg: RunConfig) -> list[Interval]:
    return intervals_from_boundaries(cfg.experts.boundaries, cfg.diffusion.timesteps)


def expert_names(cfg: RunConfig) -> list[str]:
    """expert_1 handles the cleanest interval (t near 0), the last one the noisiest."""
    return [f"expert_{k + 1}" for k in range(len(cfg.experts.boundaries) + 1)]


def train_jobs(cfg: RunConfig) -> dict[str, TrainJob]:
    T, total, points = cfg.diffusion.timesteps, cfg.training.baseline_iterations, cfg.training.eval_points
    jobs = {"baseline": TrainJob("baseline", Interval(0, T), total, snapshot_steps(total, points))}
    intervals = expert_intervals(cfg)
    for name, interval, budget in zip(expert_names(cfg), intervals, expert_budgets(intervals, T, total)):
        jobs[name] = TrainJob(name, interval, budget, snapshot_steps(budget, points))
    return jobs


def run_models(cfg: RunConfig) -> dict[str, list[str]]:
    """Evaluated runs and the models each one routes between."""
    return {"baseline": ["baseline"], "mdm": expert_names(cfg)}


_PINNED = []  # the slot lives as long as the process


def job_device(threads: int, gpu: bool = False) -> torch.device:
    """CUDA when present, else the CPU limited to the rule's threads (no oversubscription).

    ``gpu=True`` (rules with ``resources: gpu=1``) first takes a free GPU slot, so jobs run
    side by side with ``--resources gpu=N`` each get their own device.
    """
    if gpu and not _PINNED:
        slot = pin_to_free_gpu()
        if slot is not None:
            _PINNED.append(slot)
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
