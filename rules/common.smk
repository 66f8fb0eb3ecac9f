# Config validation, the run folder and input functions shared by all rules (result paths: mdmlib.paths).
import functools
import os

from mdmlib import paths
from mdmlib.config import check_diffpruning_model, load_config, to_plain
from mdmlib.intervals.choice import read_choice
from mdmlib.intervals.registry import interval_method, method_names
from mdmlib.runtime.allocator import tune_allocator
from mdmlib.studies.reallocation import plan_models, read_plan
from mdmlib.studies.runs import (
    REALLOCATED_RUN,
    RunPlan,
    ablation_budget,
    eight_expert_models,
    main_split,
    split_runs,
    stage_count_runs,
    swap_runs,
)
from mdmlib.studies.diffpruning_runs import run_budget, width_experts
from mdmlib.studies.tdc_runs import tdc_base_iterations, tdc_base_point
from mdmlib.training.job import (
    DP_NAME,
    MODEL_PATTERN,
    ExpertName,
    PRUNED_NAME,
    TDC_FULL,
    TDC_NAME,
    baseline_model,
    is_fresh_shape,
    parse_tdc_name,
    pruned_base_name,
    snapshot_steps,
    without_budget,
)

# Every job inherits these malloc settings (mdmlib/runtime/allocator.py: page faults cost a CPU sampling job ~18%).
tune_allocator()

# Fails here, before any job runs, with the offending key in the message.
CFG = load_config(config)
OUT = paths.run_dir(CFG)
T = CFG.diffusion.timesteps
N = CFG.experts.n


def chosen_intervals(method, n=N):
    return read_choice(checkpoints.select_intervals.get(method=method, n=n).output.choice).intervals


def reallocated_models():
    return plan_models(read_plan(checkpoints.reallocate_budgets.get().output[0]))


# Which models each run routes, which snapshot and sample file serve each point: mdmlib.studies.runs.
PLAN = RunPlan(CFG, OUT, chosen_intervals, reallocated_models)
run_models, run_points, checkpoint_file = PLAN.models, PLAN.run_points, PLAN.checkpoint
BASELINE = PLAN.baseline
BASELINE_RUNS = PLAN.baseline_runs  # MDM paper Tables 1, 3, 4: the `baselines` target
EIGHT_RUNS = PLAN.eight_runs  # MDM Sec. 4.1: the `convergence` target
RUNS = PLAN.runs
ABLATION_RUNS = PLAN.ablation_runs  # multi-stage Tables 7 and 9: part of the `multistage` target
MAIN_RUNS = list(PLAN.MAIN_RUNS)
SWAP_RUNS = swap_runs(CFG)  # MDM with one expert's interval served by the baseline (rule expert_swap)
POINTS = PLAN.points
STUDY_METHODS = list(CFG.intervals.study.methods)
SELECTED_METHODS = [m for m in method_names() if m in STUDY_METHODS or m == CFG.experts.intervals]
ENV = "../envs/mdm.yaml"
# The offline default scores with a classifier trained here; Inception needs no training
# but wants a GPU at paper scale.
INCEPTION = CFG.metrics.features == "inception"


def trigger(section):
    """A config section as a rule's params, so that changing it reruns the rule: Snakemake
    ignores params it cannot represent (dataclasses) when deciding what to rerun."""
    return to_plain(section)


# What one sample set's images depend on: not on how many sets a table asks for.
SAMPLING = {k: v for k, v in trigger(CFG.sampling).items() if k != "seed_sets"}


wildcard_constraints:
    model=MODEL_PATTERN,
    run="|".join(RUNS),
    method="|".join(method_names()),
    n="|".join(map(str, PLAN.interval_counts)),
    point=r"\d+",


def snapshot_outputs(model="{model}"):
    return [paths.snapshot(OUT, model, p) for p in POINTS]


def choice_path(method):
    return paths.choice(OUT, method, N)


def point_checkpoints(wildcards):
    return PLAN.checkpoints(wildcards.run, int(wildcards.point))


def series_samples(wildcards):
    return PLAN.series_samples(wildcards.run)


def feature_net_input(wildcards=None):
    return {} if INCEPTION else {"net": paths.feature_net(OUT)}


def selection_inputs(wildcards):
    """What the method's registry entry asks for: the training split, a baseline snapshot."""
    method, inputs = interval_method(wildcards.method), {}
    if "train" in method.inputs:
        inputs["train"] = rules.prepare_data.output.train
    if "model" in method.inputs:
        fraction = CFG.intervals.settings(method.name).checkpoint_fraction
        inputs["model"] = checkpoint_file(baseline_model(CFG, fraction), POINTS[-1], [BASELINE])
    return inputs


def selection_settings(wildcards):
    """Everything the method reads, so that changing it reruns the checkpoint."""
    own = CFG.intervals.settings(wildcards.method)
    return {"diffusion": trigger(CFG.diffusion), "n": int(wildcards.n), "seed": CFG.intervals.seed, "method": trigger(own),
            "boundaries": CFG.experts.boundaries if wildcards.method == "paper" else None}


def final_outputs():
    tables = [paths.table(OUT, name, ext) for name in ("quality", "efficiency", "interval_study", "intervals",
                                                        "expert_swap") for ext in ("csv", "md")]
    figures = [paths.figure(OUT, name, ext) for name in ("fid_vs_cost", "interval_study", "expert_swap")
               for ext in ("png", "pdf")]
    grids = [paths.sample_grid(OUT, run, ext) for run in MAIN_RUNS for ext in ("png", "pdf")]
    analyses = [paths.interval_figures(OUT, m, N) for m in SELECTED_METHODS]
    return tables + figures + grids + analyses + [paths.provenance(OUT)]


def baseline_outputs():
    return [paths.table(OUT, name, ext) for name in ("table1_t_sampling", "table3_baselines", "table4_hybrid")
            for ext in ("csv", "md")]


# The multi-stage comparison (rules/multistage.smk): its runs, and (output key, kind, file stem).
MULTISTAGE_TABLE_RUNS = ("baseline", "separate", "multistage")
MULTISTAGE_OUTPUTS = (("table5", "table", "multistage_table5_training_cost"),
                      ("table6", "table", "multistage_table6_precision_recall"),
                      ("stages", "table", "multistage_stage_costs"),
                      ("figure", "figure", "multistage_fig1d_fid_vs_iterations"))


# Its ablations: the number of stages (Table 9 form) and encoder/decoder splits (Table 7 form).
ABLATION_OUTPUTS = (("table9", "table", "multistage_table9_stages"),
                    ("table7", "table", "multistage_table7_splits"))


def output_files(outputs):
    """(output key, kind, stem) -> {key_ext: path}: tables as CSV + Markdown, figures as PNG + PDF."""
    return {f"{name}_{ext}": (paths.figure if kind == "figure" else paths.table)(OUT, stem, ext)
            for name, kind, stem in outputs for ext in (("png", "pdf") if kind == "figure" else ("csv", "md"))}


def multistage_outputs():
    return [*output_files(MULTISTAGE_OUTPUTS).values(), *output_files(ABLATION_OUTPUTS).values()]


# TDC training (rules/tdc.smk): the original (the baseline) and the TDC runs, and its outputs.
TDC_TABLE_RUNS = ["baseline", *PLAN.tdc_runs]
TDC_BASE_POINT = tdc_base_point(CFG)
TDC_OUTPUTS = (("table1", "table", "tdc_table1_training"), ("table6", "table", "tdc_table6_pruning_methods"),
               ("table5", "table", "tdc_table5_pruning_vs_scratch"),
               ("groups", "table", "tdc_pruned_groups"), ("fig3", "figure", "tdc_fig3_fid_vs_steps"))
TDC_ABLATION_OUTPUTS = (("table2", "table", "tdc_table2_flops_schedules"), ("table3", "table", "tdc_table3_groups"),
                        ("table_k", "table", "tdc_fig6_k"), ("figure_k", "figure", "tdc_fig6_k"))


def base_snapshot(steps):
    """The baseline's snapshot at ``steps`` (one of its evaluation points): a pruned model's base."""
    return paths.snapshot(OUT, BASELINE, snapshot_steps(CFG.training.baseline_iterations, len(POINTS)).index(steps) + 1)


def tdc_init(wildcards):
    """A TDC model's start: its pruned base model, the base model itself when nothing is pruned,
    or a fresh network of the pruned shape (Table V's scratch rows)."""
    if is_fresh_shape(wildcards.model):
        return paths.pruned_fresh(OUT, pruned_base_name(wildcards.model))
    if parse_tdc_name(wildcards.model)[0] == TDC_FULL:
        return base_snapshot(parse_tdc_name(wildcards.model)[1])
    return paths.pruned(OUT, pruned_base_name(wildcards.model))


def tdc_pruning_reports(wildcards=None):
    models = {m for run in PLAN.tdc_runs for m in run_models(run)}
    return sorted({paths.pruning_report(OUT, pruned_base_name(m)) for m in models
                   if TDC_NAME.fullmatch(m) and parse_tdc_name(m)[0] != TDC_FULL})


# DiffPruning (rules/diffpruning.smk): the baseline and the runs at each budget, and its outputs.
DP_TABLE_RUNS = ["baseline", *PLAN.diffpruning_runs]
DP_BUDGETS = sorted({run_budget(r) for r in PLAN.diffpruning_runs}, reverse=True)
DP_OUTPUTS = (("table1", "table", "diffpruning_table1"), ("experts", "table", "diffpruning_experts"),
              ("macs_split", "figure", "diffpruning_macs_split"), ("agent_curve", "figure", "diffpruning_agent_curve"))


@functools.cache
def check_diffpruning():
    """DiffPruning's checks that need the model (PyTorch, imported only then): before any job runs,
    once the DAG asks for DiffPruning's jobs."""
    check_diffpruning_model(CFG)
    from mdmlib.routing.agent_training import check_budgets

    check_budgets(CFG)


def dp_width_experts():
    """The elastic width experts (names) of DiffPruning's intervals, clean to noisy."""
    check_diffpruning()
    dp = CFG.diffpruning
    return [w.name for w in width_experts(CFG, chosen_intervals(dp.intervals, dp.n))]


def dp_init(wildcards):
    """An expert's start: the baseline's snapshot (elastic depth), its depth stage with width units
    sorted (elastic width), or its physically pruned form (the final fine-tune)."""
    check_diffpruning()
    expert = ExpertName.parse(wildcards.model)
    if expert.stage == "depth":
        return base_snapshot(expert.base)
    if expert.stage == "width":
        return paths.sorted_expert(OUT, expert.start().name)
    return paths.pruned_expert(OUT, without_budget(wildcards.model))


def convergence_outputs():
    figures = [paths.figure(OUT, name, ext) for name in ("fig2_loss_per_interval", "fig3a_expert_convergence")
               for ext in ("png", "pdf")]
    tables = [paths.table(OUT, name, ext) for name in ("slowest_intervals", "reallocation", "reallocation_summary")
              for ext in ("csv", "md")]
    return figures + tables


# The claims table and the report page (rules/report.smk).
# The rule whose claims file holds a target's claims -> that target.
CLAIM_SOURCES = {"paper_tables": "run", "interval_study": "run", "baseline_tables": "baselines",
                 "convergence_study": "convergence", "multistage_tables": "multistage",
                 "multistage_ablations": "multistage", "tdc_tables": "tdc",
                 "tdc_ablations_tables": "tdc-ablations", "diffpruning_tables": "diffpruning"}


def claim_files(wildcards=None, existing_only=False):
    """`make run`'s claims always (unless ``existing_only``); another target's once its claims file exists."""
    return [path for source, target in CLAIM_SOURCES.items() for path in [paths.claims(OUT, source)]
            if (target == "run" and not existing_only) or os.path.exists(path)]


def shown(path):
    """Tables as Markdown, figures as PNG, and the folders of the interval analyses' figures."""
    return path.endswith((".md", ".png")) or "/figures/intervals/" in path


def report_sections(wildcards=None):
    """Heading -> tables, figures and figure folders of `make run`, then of each target that has run."""
    sections = {"make run": [p for p in final_outputs() if shown(p)]}
    for target, outputs in (("make baselines", baseline_outputs()), ("make convergence", convergence_outputs()),
                            ("make multistage", multistage_outputs()),
                            ("make tdc", list(output_files(TDC_OUTPUTS).values())),
                            ("make tdc-ablations", list(output_files(TDC_ABLATION_OUTPUTS).values())),
                            ("make diffpruning", list(output_files(DP_OUTPUTS).values()))):
        if all(os.path.exists(p) for p in outputs):
            sections[target] = [p for p in outputs if shown(p)]
    return sections
