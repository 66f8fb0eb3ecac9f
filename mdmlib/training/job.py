"""What one training job is: its model name, interval, budget, recipe and snapshot steps.

Torch-free, so that building the DAG (rules/common.smk) never imports PyTorch: the
Snakefile and the workflow scripts both read this, and a model's interval and budget
are decided in one place.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from mdmlib.config import RunConfig
from mdmlib.core.intervals import Interval, expert_budgets

RECIPES = ("adm", "p2w", "soft_truncation", "importance")  # timestep sampler + loss weights (training.samplers)
DEFAULT_RECIPE = "adm"

MODEL_NAME = re.compile(r"t(\d+)-(\d+)_i(\d+)(?:_(p2w|soft_truncation|importance))?")
MODEL_PATTERN = MODEL_NAME.pattern  # the Snakefile's wildcard constraint


def model_name(interval: Interval, iterations: int, recipe: str = DEFAULT_RECIPE) -> str:
    """A model is named by what it trains: 't100-800_i2100' is (100, 800] for 2100 iterations
    with the ADM recipe; other recipes add a suffix ('t0-1000_i2400_p2w').

    Runs that ask for the same interval, budget and recipe (e.g. two selection methods that
    agree) therefore share one trained model, and a new choice retrains only what changed.
    """
    suffix = "" if recipe == DEFAULT_RECIPE else f"_{recipe}"
    return f"t{interval.lo}-{interval.hi}_i{iterations}{suffix}"


def parse_model_name(name: str) -> tuple[Interval, int, str]:
    """'t100-800_i2100_p2w' -> (Interval(100, 800), 2100, 'p2w'); the inverse of ``model_name``."""
    match = MODEL_NAME.fullmatch(name)
    if not match:
        raise ValueError(f"model name {name!r} is not of the form t<lo>-<hi>_i<iterations>[_<recipe>]")
    lo, hi, iterations = map(int, match.groups()[:3])
    return Interval(lo, hi), iterations, match.group(4) or DEFAULT_RECIPE


def train_job(name: str, cfg: RunConfig) -> TrainJob:
    interval, iterations, recipe = parse_model_name(name)
    if interval.hi > cfg.diffusion.timesteps or iterations < 1:
        raise ValueError(f"model {name!r} does not fit T={cfg.diffusion.timesteps}")
    return TrainJob(name, interval, iterations, snapshot_steps(iterations, cfg.training.eval_points), recipe=recipe)


def snapshot_source(model: str, candidates: list[str], points: int) -> tuple[str, int] | None:
    """(longer model, point) whose snapshot is ``model``'s final weights, or None.

    Training has no budget-dependent part (constant learning rate; data, timesteps and noise
    from a generator seeded by the config), so a model trained for k steps equals a model of
    the same interval and recipe with a longer budget at its snapshot of step k
    (``test_short_run_is_the_snapshot_of_a_longer_one``). Study runs whose budgets fall on
    the main runs' evaluation points therefore train nothing.
    """
    interval, steps, recipe = parse_model_name(model)
    for other in candidates:
        other_interval, other_steps, other_recipe = parse_model_name(other)
        if (other_interval, other_recipe) != (interval, recipe) or other_steps <= steps:
            continue
        snapshots = snapshot_steps(other_steps, points)
        if steps in snapshots:
            return other, snapshots.index(steps) + 1
    return None


def baseline_model(cfg: RunConfig, fraction: float = 1.0) -> str:
    """The single model on (0, T]; ``fraction`` < 1 names the same run stopped early (same seed)."""
    iterations = max(1, round(fraction * cfg.training.baseline_iterations))
    return model_name(Interval(0, cfg.diffusion.timesteps), iterations, cfg.training.recipe)


def expert_models(intervals: list[Interval], total_iterations: int, timesteps: int,
                  recipe: str = DEFAULT_RECIPE) -> list[str]:
    """Experts from clean to noisy, I_e = |tau_e|/T of the total (MDM Sec. 3)."""
    budgets = expert_budgets(intervals, timesteps, total_iterations)
    return [model_name(i, b, recipe) for i, b in zip(intervals, budgets)]


@dataclass(frozen=True)
class TrainJob:
    name: str  # "baseline", "expert_1", ...
    interval: Interval  # timesteps this model trains on
    iterations: int  # its budget
    snapshot_steps: tuple[int, ...]  # steps whose EMA weights feed the evaluation series
    recipe: str = DEFAULT_RECIPE  # timestep sampling and loss weights: one of RECIPES

    def __post_init__(self):
        if self.recipe not in RECIPES:
            raise ValueError(f"[{self.name}] unknown training recipe {self.recipe!r}; expected one of {RECIPES}")


def snapshot_steps(iterations: int, points: int) -> tuple[int, ...]:
    """``points`` evenly spaced steps ending at the budget (repeats possible for tiny budgets)."""
    return tuple(max(1, round(iterations * (i + 1) / points)) for i in range(points))

