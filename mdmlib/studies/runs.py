"""Which runs a config evaluates, which models each run routes between, which snapshots and
samples serve each point (``RunPlan``, behind the rules' input functions).

Torch-free: the Snakefile reads this to build the DAG; model names and budgets come from
``mdmlib.training.job``.
"""
from __future__ import annotations

from typing import Callable, Sequence

from mdmlib import paths
from mdmlib.config import RunConfig
from mdmlib.core.intervals import Interval
from mdmlib.intervals.fixed import paper_intervals
from mdmlib.studies.diffpruning_runs import (
    MIXTURE,
    SINGLE,
    diffpruning_runs,
    dp_run_models,
)
from mdmlib.studies.tdc_runs import (
    TDC_METHOD,
    compared_at_end,
    tdc_ablation_runs,
    tdc_run_models,
    tdc_runs,
)
from mdmlib.training.job import (
    baseline_model,
    decoder_widths,
    expert_models,
    model_name,
    multistage_model,
    snapshot_source,
    split_widths,
)

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
    """Evaluated runs: the baseline, MDM on the configured intervals, one study run per method,
    and one expert-swap run per expert (the diagnostic of which expert holds MDM back)."""
    return ["baseline", "mdm", *(f"study_{m}" for m in cfg.intervals.study.methods), *swap_runs(cfg)]


def swap_runs(cfg: RunConfig) -> list[str]:
    """'swap_k': MDM's final mixture with expert k's interval served by the baseline instead."""
    return [f"swap_{k}" for k in range(1, cfg.experts.n + 1)]


def run_recipe(run: str, cfg: RunConfig) -> tuple[str, int]:
    """(interval method, total iterations) of an MDM run."""
    if run == "mdm":
        return cfg.experts.intervals, cfg.training.baseline_iterations
    if run.startswith("study_"):
        return run.removeprefix("study_"), cfg.intervals.study.iterations
    raise ValueError(f"run {run!r} has no interval method")


# ---------------------------------------------------------- the 8-expert study (`convergence`)


MULTISTAGE_RUNS = ("separate", "multistage")  # the multi-stage comparison's runs beside the baseline


def ablation_budget(cfg: RunConfig) -> int:
    """Steps of every multi-stage Table 7 / Table 9 model."""
    ms = cfg.multistage
    return ms.ablation_iterations or ms.iterations or cfg.training.baseline_iterations


def stage_count_runs(cfg: RunConfig) -> dict[int, str]:
    """Table 9 form: stage count -> its run ('stages1' is the unified model)."""
    return {n: f"stages{n}" for n in cfg.multistage.stage_counts}


def split_runs(cfg: RunConfig) -> list[str]:
    """Table 7 form: one run per encoder/decoder split. The split that is the main multi-stage
    architecture is Table 9's run of experts.n stages when there is one (same model, sampled once)."""
    table9, main = stage_count_runs(cfg), main_split(cfg)
    return [table9[cfg.experts.n] if k == main and cfg.experts.n in table9 else f"split{k + 1}"
            for k in range(len(cfg.multistage.splits))]


def main_split(cfg: RunConfig) -> int | None:
    """The index of the split that is the main multi-stage architecture, if one is."""
    main = (cfg.model.base_channels, decoder_widths(cfg, cfg.experts.n))
    matches = [k for k, s in enumerate(cfg.multistage.splits) if split_widths(cfg, s, cfg.experts.n) == main]
    return matches[0] if matches else None


def ablation_runs(cfg: RunConfig) -> list[str]:
    return list(dict.fromkeys([*stage_count_runs(cfg).values(), *split_runs(cfg)]))
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




# ------------------------------------------------ what the rules' input functions ask (unit-tested)


class RunPlan:
    """Which models each run routes between, which snapshot serves each of its points, and
    which sample file each point reads: the logic behind the rules' input functions.

    ``chosen_intervals(method, n=experts.n)`` and ``reallocated_models()`` read the checkpoint rules'
    outputs; in the Snakefile they raise Snakemake's incomplete-checkpoint signal until those
    exist, so the DAG grows once the files are there.
    """

    MAIN_RUNS = ("baseline", "mdm")

    def __init__(self, cfg: RunConfig, out: str, chosen_intervals: Callable[..., list[Interval]],
                 reallocated_models: Callable[[], list[str]]):
        self.cfg, self.out = cfg, out
        self.chosen_intervals, self.reallocated_models = chosen_intervals, reallocated_models
        self.points = list(range(1, cfg.training.eval_points + 1))
        self.baseline = baseline_model(cfg)
        self.baseline_runs = baseline_runs(cfg)  # MDM paper Tables 1, 3, 4: the `baselines` target
        self.eight_runs = eight_expert_runs()  # MDM Sec. 4.1: the `convergence` target
        self.ablation_runs = ablation_runs(cfg)  # multi-stage Tables 7 and 9: the `multistage` target
        self.tdc_runs = tdc_runs(cfg)  # TDC Tables I, V, VI and Fig. 3: the `tdc` target
        self.tdc_ablation_runs = tdc_ablation_runs(cfg)  # TDC Tables II, III: `tdc_ablations`
        self.diffpruning_runs = diffpruning_runs(cfg)  # DiffPruning Table 1: `diffpruning`
        self.runs = (run_names(cfg) + self.baseline_runs + self.eight_runs + [REALLOCATED_RUN, *MULTISTAGE_RUNS]
                     + self.ablation_runs + self.tdc_runs + self.tdc_ablation_runs + self.diffpruning_runs)
        # the interval counts selected: experts.n, and Table 9's other stage counts
        self.interval_counts = sorted({cfg.experts.n, cfg.tdc.groups, *cfg.tdc.group_counts, cfg.diffpruning.n,
                                       *(n for n in cfg.multistage.stage_counts if n > 1)})

    def models(self, run: str) -> list[str]:
        """The models a run routes between; MDM runs need their interval choice first."""
        if run == "baseline":
            return [self.baseline]
        if run.startswith("swap_"):  # MDM's experts, expert k replaced by the baseline
            models = self.models("mdm")
            models[int(run.removeprefix("swap_")) - 1] = self.baseline
            return models
        if run in self.baseline_runs:
            return baseline_run_models(run, self.cfg)
        if run in self.eight_runs:
            return eight_expert_models(self.cfg)
        if run == REALLOCATED_RUN:  # the eight experts again, on budgets their convergence decided
            return self.reallocated_models()
        if run in MULTISTAGE_RUNS:  # the multi-stage comparison, on its interval method's stages
            stages = self.chosen_intervals(self.cfg.multistage.intervals)
            total = self.cfg.training.baseline_iterations
            if run == "multistage":
                return [multistage_model(self.cfg, stages, self.cfg.multistage.iterations or total)]
            return expert_models(stages, total, self.cfg.diffusion.timesteps, self.cfg.training.recipe)
        if run in self.ablation_runs:
            return [self.ablation_model(run)]
        if run in self.tdc_runs or run in self.tdc_ablation_runs:
            n = int(run.removeprefix("tdcgroups_")) if run.startswith("tdcgroups_") else self.cfg.tdc.groups
            return tdc_run_models(run, self.cfg, self.chosen_intervals(TDC_METHOD, n))
        if run in self.diffpruning_runs:
            dp = self.cfg.diffpruning
            return dp_run_models(run, self.cfg, self.chosen_intervals(dp.intervals, dp.n))
        method, total_iterations = run_recipe(run, self.cfg)
        return expert_models(self.chosen_intervals(method), total_iterations, self.cfg.diffusion.timesteps,
                             self.cfg.training.recipe)

    def ablation_model(self, run: str) -> str:
        """The model of a Table 9 run (stages<n>) or a Table 7 run (split<k>)."""
        cfg, budget = self.cfg, ablation_budget(self.cfg)
        if run.startswith("stages"):
            n = int(run.removeprefix("stages"))
            if n == 1:  # one stage: the unified model
                return model_name(Interval(0, cfg.diffusion.timesteps), budget, cfg.training.recipe)
            return multistage_model(cfg, self.chosen_intervals(cfg.multistage.stage_count_method, n), budget)
        split = cfg.multistage.splits[int(run.removeprefix("split")) - 1]
        return multistage_model(cfg, self.chosen_intervals(cfg.multistage.intervals, cfg.experts.n), budget,
                                split_widths(cfg, split, cfg.experts.n))

    def shared_sources(self, run: str) -> list[str]:
        """The runs an end-point-only run (a study run, the reallocated run, a multi-stage
        ablation) may take models and samples from; [] for runs evaluated over their whole series."""
        if run.startswith(("study_", "swap_")):
            return list(self.MAIN_RUNS)
        if run in self.ablation_runs:
            return ["baseline", "multistage"]
        return self.eight_runs[:1] if run == REALLOCATED_RUN else []

    def run_points(self, run: str) -> list[int]:
        """End-point-only runs (those sharing models with others, DiffPruning's mixtures, TDC's
        pruned and ablation runs) are compared at their end; the others over their series."""
        end_only = self.shared_sources(run) or run.startswith((MIXTURE, SINGLE)) or compared_at_end(run)
        return self.points[-1:] if end_only else self.points

    def checkpoint(self, model: str, point: int, longer_models: Sequence[str] = ()) -> str:
        """A model's snapshot at a point. Its final weights are a longer model's snapshot when one
        of ``longer_models`` (same interval and recipe) has a snapshot at its budget: that model
        is then never trained on its own (``mdmlib.training.job.snapshot_source`` says why this is exact)."""
        if point == self.points[-1]:
            source = snapshot_source(model, list(longer_models), len(self.points))
            if source:
                model, point = source
        return paths.snapshot(self.out, model, point)

    def checkpoints(self, run: str, point: int) -> list[str]:
        models = self.models(run)
        snapshots = point_snapshots(run, point, len(models), self.points[-1])
        # End-point-only runs are served by longer runs' snapshots where budgets meet (an expert
        # stopped at its convergence step is the planned expert's snapshot there).
        longer = [m for source in self.shared_sources(run) for m in self.models(source)]
        return [self.checkpoint(m, p, longer) for m, p in zip(models, snapshots)]

    def sample_sources(self, run: str) -> list[str]:
        """Runs that may already have sampled a point of ``run``: samples are seeded by the
        sampling settings alone, so the same checkpoints under the same routing give the same
        images. The eight experts' curves share their last point (all experts final); the
        baseline study's ADM runs are the main runs' models when the main split is the paper's."""
        if run in self.eight_runs[1:]:
            return self.eight_runs[:1]
        if run in self.baseline_runs:
            return ["baseline"] + (["mdm"] if self.cfg.experts.intervals == "paper" else [])
        if run == "separate":  # MDM itself when the multi-stage comparison uses the main split
            return ["mdm"]
        if run.startswith(("tdcflops_", "tdcgroups_")):  # the SNR schedule, the main group count
            return [f"tdc_{self.cfg.tdc.ablation_pruning}", "tdc_full"]
        return self.shared_sources(run)

    def sampled_as(self, run: str, point: int) -> tuple[str, int]:
        """The (run, point) whose samples serve a point: another run's point when its checkpoints
        and routing are the same, else the point itself."""
        sources = self.sample_sources(run)
        checkpoints = self.checkpoints(run, point) if sources else None
        for source in sources:
            if self.routing(source) != self.routing(run):
                continue
            for source_point in self.points:
                if self.checkpoints(source, source_point) == checkpoints:
                    return source, source_point
        return run, point

    def samples(self, run: str, point: int) -> str:
        """A point's sample set 0 (``sampled_as``: another run's when it sampled the same point)."""
        return paths.samples(self.out, *self.sampled_as(run, point))

    def series_samples(self, run: str) -> list[str]:
        return [self.samples(run, p) for p in self.run_points(run)]

    def seed_sets(self, run: str) -> int:
        """Sample sets at each of a run's points: sampling.seed_sets for the runs of `make run` (the
        main runs and the interval study) and DiffPruning's end points, whose tables give mean (sd)
        and paired differences; one for the other targets' series (their tables take extra sets at chosen points)."""
        spread = run in self.MAIN_RUNS or run.startswith(("study_", "swap_", MIXTURE, SINGLE))
        return self.cfg.sampling.seed_sets if spread else 1

    def routing(self, run: str) -> list[list[int]] | None:
        """Routing intervals when they are not the models' own (``run_routing``); a swap run routes
        MDM's intervals, the baseline serving the swapped one."""
        if run.startswith("swap_"):
            return [[i.lo, i.hi] for i in self.chosen_intervals(self.cfg.experts.intervals)]
        return run_routing(run, self.cfg)

    def extra_samples(self, run: str, point: int) -> str:
        """The file of a point's sets 1 .. k-1; a source run's when it sampled the same point."""
        return paths.extra_samples(self.out, *self.sampled_as(run, point))

    def series_extra_samples(self, run: str) -> list[str]:
        """Sets 1 .. k-1 of every point of a run scored with a spread; [] for one-set runs."""
        if self.seed_sets(run) < 2:
            return []
        return [self.extra_samples(run, p) for p in self.run_points(run)]
