"""What a config asks the pipeline to train and evaluate: names, intervals, budgets.

The Snakefile and the workflow scripts both read this, so a model's interval and
budget are decided in one place.
"""
from __future__ import annotations

import re

import torch

from .config import RunConfig
from .experts import Interval, expert_budgets
from .gpu_slots import pin_to_free_gpus
from .intervals.fixed import paper_intervals
from .training import DEFAULT_RECIPE, TrainJob, snapshot_steps


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


# ------------------------------------------------------------ MDM paper Tables 1, 3, 4 (`baselines`)


def baseline_runs(cfg: RunConfig) -> list[str]:
    """'base_<recipe>' and 'mdm_<recipe>' per Table 3 recipe, 'base_importance' (Table 1), 'hybrid' (Table 4)."""
    runs = [f"{kind}_{r}" for r in cfg.baselines.recipes for kind in ("base", "mdm")]
    return runs + ["base_importance", "hybrid"]


def recipe_boundaries(recipe: str, cfg: RunConfig) -> tuple[float, ...]:
    """The paper's MDM split for each baseline: Soft-truncation has its own."""
    return cfg.baselines.soft_truncation_boundaries if recipe == "soft_truncation" else cfg.experts.boundaries


def baseline_run_models(run: str, cfg: RunConfig) -> list[str]:
    """The models a baseline-study run routes between (their intervals are fixed by the config)."""
    T = cfg.diffusion.timesteps
    total = cfg.baselines.iterations or cfg.training.baseline_iterations
    if run == "hybrid":  # MDM's expert for tau_A, the ADM baseline everywhere else
        return [model_name(Interval(0, T), total), mdm_models("adm", cfg)[-1]]
    kind, _, recipe = run.partition("_")
    if kind == "base":
        return [model_name(Interval(0, T), total, recipe)]
    if kind == "mdm":
        return mdm_models(recipe, cfg)
    raise ValueError(f"run {run!r} is not a baseline-study run")


def mdm_models(recipe: str, cfg: RunConfig) -> list[str]:
    T = cfg.diffusion.timesteps
    total = cfg.baselines.iterations or cfg.training.baseline_iterations
    return expert_models(paper_intervals(recipe_boundaries(recipe, cfg), T).intervals, total, T, recipe)


def run_routing(run: str, cfg: RunConfig) -> list[list[int]] | None:
    """Routing intervals when they are not the models' own: the hybrid's baseline covers only
    what its tau_A expert does not."""
    if run != "hybrid":
        return None
    tau_a = paper_intervals(cfg.experts.boundaries, cfg.diffusion.timesteps).intervals[-1]
    return [[0, tau_a.lo], [tau_a.lo, tau_a.hi]]


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


# ---------------------------------------------------------- the 8-expert study (`convergence`)


REALLOCATED_RUN = "reallocated8"  # the eight experts on reallocated budgets (mdmlib.reallocation)


def eight_expert_runs() -> list[str]:
    """One evaluation run per expert: expert k over its snapshots, the others fully trained."""
    return [f"expert8_{k}" for k in range(1, 9)]


def eight_expert_models(cfg: RunConfig) -> list[str]:
    T = cfg.diffusion.timesteps
    fractions = tuple(k / 8 for k in range(1, 8))
    return expert_models(paper_intervals(fractions, T).intervals, cfg.training.baseline_iterations, T,
                         cfg.training.recipe)


def point_snapshots(run: str, point: int, n_models: int, last_point: int) -> list[int]:
    """The snapshot of each of a run's models at one evaluation point."""
    if run.startswith("expert8_"):
        varied = int(run.removeprefix("expert8_")) - 1
        return [point if k == varied else last_point for k in range(n_models)]
    return [point] * n_models


_PINNED = []  # the slot lives as long as the process


def job_device(threads: int, gpu: bool = False, gpus: int = 1) -> torch.device:
    """CUDA when present, else the CPU limited to the rule's threads (no oversubscription).

    ``gpu=True`` (rules with ``resources: gpu=N``) first takes ``gpus`` free GPU slots, so
    jobs run side by side with ``--resources gpu=N`` each get their own devices.
    """
    if gpu and not _PINNED:
        _PINNED.extend(pin_to_free_gpus(gpus))
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
