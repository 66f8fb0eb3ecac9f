"""Which runs a config evaluates and which models each run routes between.

Torch-free: the Snakefile reads this to build the DAG; model names and budgets come from
``mdmlib.training.job``.
"""
from __future__ import annotations

from mdmlib.config import RunConfig
from mdmlib.core.intervals import Interval
from mdmlib.intervals.fixed import paper_intervals
from mdmlib.training.job import expert_models, model_name

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


REALLOCATED_RUN = "reallocated8"  # the eight experts on reallocated budgets (mdmlib.studies.reallocation)


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


