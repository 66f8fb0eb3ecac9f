"""DiffPruning's runs (`diffpruning`): the elastic experts of each interval, the pruned mixture at
each MACs budget and the single-model pruning baseline (the paper's SP) at the same budget.
Torch-free, like ``mdmlib.studies.runs`` (whose ``RunPlan`` asks this module about them)."""
from __future__ import annotations

from mdmlib.config import RunConfig
from mdmlib.core.intervals import Interval
from mdmlib.training.job import ExpertName, tdc_model_name

MIXTURE, SINGLE = "dp_m", "sp_m"  # run prefixes: the pruned mixture, the pruned single model


def permille(budget: float) -> int:
    return round(budget * 1000)


def diffpruning_runs(cfg: RunConfig) -> list[str]:
    """'sp_m<budget>' and 'dp_m<budget>' per MACs budget (per mille), largest budget first."""
    budgets = sorted(cfg.diffpruning.budgets, reverse=True)
    return [f"{prefix}{permille(b)}" for b in budgets for prefix in (SINGLE, MIXTURE)]


def run_budget(run: str) -> int:
    """A DiffPruning run's budget in per mille of the baseline's MACs."""
    if not run.startswith((MIXTURE, SINGLE)):
        raise ValueError(f"run {run!r} is not a DiffPruning run")
    return int(run[len(MIXTURE):])


def dp_base_iterations(cfg: RunConfig) -> int:
    """The pretrained model: the baseline's final snapshot."""
    return cfg.training.baseline_iterations


def width_experts(cfg: RunConfig, intervals: list[Interval]) -> list[ExpertName]:
    """The elastically fine-tuned experts (depth, then width), clean to noisy."""
    dp = cfg.diffpruning
    return [ExpertName("width", i, dp_base_iterations(cfg), permille(dp.drop_probability), dp.width_iterations,
                       dp.depth_iterations) for i in intervals]


def single_model_steps(cfg: RunConfig) -> int:
    """The single-model baseline's fine-tune steps: every expert's elastic depth, elastic width and
    final fine-tune steps together (the paper matches SP's fine-tuning to this sum)."""
    dp = cfg.diffpruning
    return dp.n * (dp.depth_iterations + dp.width_iterations + dp.finetune_iterations)


def dp_run_models(run: str, cfg: RunConfig, intervals: list[Interval]) -> list[str]:
    """A DiffPruning run's models, clean to noisy: the pruned experts, or the one pruned baseline."""
    budget = run_budget(run)
    if run.startswith(MIXTURE):
        return [w.pruned(budget, cfg.diffpruning.finetune_iterations).name for w in width_experts(cfg, intervals)]
    whole = Interval(0, cfg.diffusion.timesteps)
    return [tdc_model_name(cfg.diffpruning.single_model_pruning, dp_base_iterations(cfg), whole, budget / 1000,
                           single_model_steps(cfg))]
