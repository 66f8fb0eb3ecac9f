"""What a config asks the pipeline to train and evaluate: names, intervals, budgets.

The Snakefile and the workflow scripts both read this, so a model's interval and
budget are decided in one place.
"""
from __future__ import annotations

import re

import torch

from .config import RunConfig
from .experts import Interval, expert_budgets
from .gpu_slots import pin_to_free_gpu
from .training import TrainJob, snapshot_steps


MODEL_NAME = re.compile(r"t(\d+)-(\d+)_i(\d+)")
MODEL_PATTERN = MODEL_NAME.pattern  # the Snakefile's wildcard constraint


def model_name(interval: Interval, iterations: int) -> str:
    """A model is named by what it trains: 't100-800_i2100' is (100, 800] for 2100 iterations.

    Runs that ask for the same interval and budget (e.g. two selection methods that agree)
    therefore share one trained model, and a new choice retrains only what changed.
    """
    return f"t{interval.lo}-{interval.hi}_i{iterations}"


def train_job(name: str, cfg: RunConfig) -> TrainJob:
    match = MODEL_NAME.fullmatch(name)
    if not match:
        raise ValueError(f"model name {name!r} is not of the form t<lo>-<hi>_i<iterations>")
    lo, hi, iterations = map(int, match.groups())
    if hi > cfg.diffusion.timesteps or iterations < 1:
        raise ValueError(f"model {name!r} does not fit T={cfg.diffusion.timesteps}")
    return TrainJob(name, Interval(lo, hi), iterations, snapshot_steps(iterations, cfg.training.eval_points))


def baseline_model(cfg: RunConfig, fraction: float = 1.0) -> str:
    """The single model on (0, T]; ``fraction`` < 1 names the same run stopped early (same seed)."""
    iterations = max(1, round(fraction * cfg.training.baseline_iterations))
    return model_name(Interval(0, cfg.diffusion.timesteps), iterations)


def expert_models(intervals: list[Interval], total_iterations: int, timesteps: int) -> list[str]:
    """Experts from clean to noisy, I_e = |tau_e|/T of the total (MDM Sec. 3)."""
    budgets = expert_budgets(intervals, timesteps, total_iterations)
    return [model_name(i, b) for i, b in zip(intervals, budgets)]


def run_names(cfg: RunConfig) -> list[str]:
    """Evaluated runs: the baseline, MDM on the configured intervals, one study run per method."""
    return ["baseline", "mdm", *(f"study_{m}" for m in cfg.intervals.study.methods)]


def run_recipe(run: str, cfg: RunConfig) -> tuple[str, int]:
    """(interval method, total iterations) of an MDM run."""
    if run == "mdm":
        return cfg.experts.intervals, cfg.training.baseline_iterations
    if run.startswith("study_"):
        return run.removeprefix("study_"), cfg.intervals.study.iterations
    raise ValueError(f"run {run!r} has no interval method")


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
