"""TDC's runs (`tdc`, `tdc_ablations`): which group models each routes, the FLOPs limits of its
groups (Eq. 4 and Table II's schedules), the base model's snapshot. Torch-free, like
``mdmlib.studies.runs`` (whose ``RunPlan`` asks this module about TDC runs)."""
from __future__ import annotations

from typing import Sequence

from mdmlib.config import RunConfig
from mdmlib.core.intervals import Interval
from mdmlib.training.job import model_name, snapshot_steps, tdc_model_name

TDC_FULL = "tdc_full"  # Table I's TDC without pruning (groups fine-tuned at full size)
TDC_SCRATCH = "tdc_scratch"  # Fig. 3's single-stage training: each group's model from scratch
TDC_METHOD = "snr"  # TDC's groups come from its SNR-based difficulty (intervals.snr)


def tdc_runs(cfg: RunConfig) -> list[str]:
    """'tdc_full' (no pruning), 'tdc_<method>' per pruning method (Table VI), 'tdc_scratch' (Fig. 3),
    and Table V's single models: 'tdcv_<method>' (the base pruned to the smallest group's limit and
    fine-tuned on all timesteps), 'tdcv_scratch' / 'tdcv_scratch_long' (that shape from scratch)."""
    table5 = [*(f"tdcv_{m}" for m in cfg.tdc.pruning), "tdcv_scratch", "tdcv_scratch_long"]
    return [TDC_FULL, *(f"tdc_{m}" for m in cfg.tdc.pruning), TDC_SCRATCH, *table5]


FLOPS_SCHEDULES = ("snr", "constant", "increasing", "decreasing")  # TDC Table II
TDC_ENDPOINT_PREFIXES = ("tdcv_", "tdcflops_", "tdcgroups_", "tdck_")  # compared at their end (equal steps)


def is_pruned_tdc_run(run: str) -> bool:
    """'tdc_<method>': TDC with one pruning method (Tables I and VI), not w/o pruning or single-stage."""
    return run.startswith("tdc_") and run not in (TDC_FULL, TDC_SCRATCH)


def compared_at_end(run: str) -> bool:
    """TDC runs scored only at their last point: Table V's models, the ablations, and every pruned
    TDC run (Tables I and VI compare the pruning methods after equal fine-tune steps, as the paper
    reports them at their full budget). Only Fig. 3's curves (w/o pruning, single-stage) need a series."""
    return is_pruned_tdc_run(run) or run.startswith(TDC_ENDPOINT_PREFIXES)


def tdc_ablation_runs(cfg: RunConfig) -> list[str]:
    """Table II: 'tdcflops_<schedule>' (the groups' FLOPs limits from each schedule); Table III:
    'tdcgroups_<n>' (TDC without pruning on n SNR groups); Fig. 6: 'tdck_<k per mille>' (the SNR
    schedule at another k; at the config's own k that is Table II's SNR run)."""
    runs = [*(f"tdcflops_{s}" for s in FLOPS_SCHEDULES), *(f"tdcgroups_{n}" for n in cfg.tdc.group_counts)]
    return runs + [run for run in k_runs(cfg) if run not in runs]


def snr_k(cfg: RunConfig) -> float:
    """k of Eq. 3-4: the smallest group's FLOPs are at least k F."""
    return cfg.intervals.settings(TDC_METHOD).min_flops_ratio


K_REFERENCE_RUN = "tdcflops_snr"  # Fig. 6 at the config's own k: Table II's SNR run (same models and samples)


def k_runs(cfg: RunConfig) -> dict[str, float]:
    """Fig. 6's run per k of tdc.k_values, by increasing k: {run: k}; the config's k (always one of
    them, checked at load) is ``K_REFERENCE_RUN``."""
    own = round(snr_k(cfg) * 1000)
    permille = {k: round(k * 1000) for k in sorted(cfg.tdc.k_values)}
    return {K_REFERENCE_RUN if p == own else f"tdck_{p}": k for k, p in permille.items()}


def schedule_limits(schedule: str, groups: Sequence[Interval], k: float, timesteps: int) -> list[float]:
    """Table II's FLOPs limits per group (over F): the SNR schedule's (Eq. 4), or a constant /
    uniformly increasing / uniformly decreasing FLOPs(t) whose mean over the timesteps equals the
    SNR schedule's (each group weighted by its share of them, as the sampler visits them). The
    uniform ones are linear in t, as steep as [k, 1] allows; a group's limit is their value at
    its middle timestep, so the mean is kept exactly."""
    snr = group_limits(len(groups), k)
    if schedule == "snr":
        return snr
    if schedule not in FLOPS_SCHEDULES:
        raise ValueError(f"unknown FLOPs schedule {schedule!r}; expected one of {FLOPS_SCHEDULES}")
    mean = sum(g.size * limit for g, limit in zip(groups, snr)) / timesteps
    slope = {"constant": 0.0, "increasing": 1.0, "decreasing": -1.0}[schedule] * 2 * min(1 - mean, mean - k)
    return [mean + slope * ((g.lo + g.hi) / 2 / timesteps - 0.5) for g in groups]


def table5_shape_method(cfg: RunConfig) -> str:
    """Whose pruned shape Table V's scratch rows train: the proxy's when it runs."""
    return "proxy" if "proxy" in cfg.tdc.pruning else cfg.tdc.pruning[0]


def tdc_base_iterations(cfg: RunConfig) -> int:
    """The base model's steps: tdc.base_iterations, or the baseline's middle snapshot."""
    steps = snapshot_steps(cfg.training.baseline_iterations, cfg.training.eval_points)
    return cfg.tdc.base_iterations or steps[(len(steps) - 1) // 2]


def tdc_base_point(cfg: RunConfig) -> int:
    """The baseline's evaluation point whose snapshot is the base model."""
    steps = snapshot_steps(cfg.training.baseline_iterations, cfg.training.eval_points)
    return steps.index(tdc_base_iterations(cfg)) + 1


def group_limits(n: int, k: float) -> list[float]:
    """TDC Eq. 4: group i's FLOPs upper limit over F, kF + (i + 1)(1 - k)F / n (as mdmlib.intervals.snr)."""
    return [k + (i + 1) * (1 - k) / n for i in range(n)]


def tdc_run_models(run: str, cfg: RunConfig, groups: list[Interval]) -> list[str]:
    """A TDC run's group models, clean to noisy. Scratch models get the two-stage run's total
    steps (base + every group's fine-tune) shared equally, so Fig. 3 compares equal totals."""
    base, ft = tdc_base_iterations(cfg), cfg.tdc.finetune_iterations
    k = snr_k(cfg)
    if run.startswith("tdcflops_"):  # Table II: the ablation's pruning method under another schedule
        limits = schedule_limits(run.removeprefix("tdcflops_"), groups, k, cfg.diffusion.timesteps)
        return [tdc_model_name(cfg.tdc.ablation_pruning, base, g, limit, ft) for g, limit in zip(groups, limits)]
    if run.startswith("tdck_"):  # Fig. 6: the same groups under another k's limits (Eq. 4)
        limits = group_limits(len(groups), int(run.removeprefix("tdck_")) / 1000)
        return [tdc_model_name(cfg.tdc.ablation_pruning, base, g, limit, ft) for g, limit in zip(groups, limits)]
    if run.startswith("tdcgroups_"):  # Table III: without pruning on n groups (``groups`` has n)
        return tdc_run_models(TDC_FULL, cfg, groups)
    if run.startswith("tdcv_"):  # one model on (0, T] at the smallest group's limit
        whole, limit = Interval(0, cfg.diffusion.timesteps), group_limits(len(groups), k)[0]
        if run.startswith("tdcv_scratch"):
            steps = ft * (cfg.tdc.scratch_factor if run == "tdcv_scratch_long" else 1)
            return [tdc_model_name(table5_shape_method(cfg), base, whole, limit, steps, fresh=True)]
        return [tdc_model_name(run.removeprefix("tdcv_"), base, whole, limit, ft)]
    if run == TDC_SCRATCH:
        each = max(1, round((base + len(groups) * ft) / len(groups)))
        return [model_name(g, each, cfg.training.recipe) for g in groups]
    method = run.removeprefix("tdc_")
    return [tdc_model_name(method, base, g, limit, ft) for g, limit in zip(groups, group_limits(len(groups), k))]
