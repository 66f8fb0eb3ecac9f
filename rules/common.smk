# Config validation, the run folder and input functions shared by all rules (result paths: mdmlib.paths).
from mdmlib import paths
from mdmlib.config import load_config, to_plain
from mdmlib.intervals.choice import read_choice
from mdmlib.intervals.registry import interval_method, method_names
from mdmlib.training.job import MODEL_PATTERN, baseline_model, expert_models, snapshot_source
from mdmlib.studies.runs import (REALLOCATED_RUN, baseline_run_models, baseline_runs, eight_expert_models,
                                 eight_expert_runs, point_snapshots, run_names, run_recipe, run_routing)
from mdmlib.studies.reallocation import plan_models, read_plan

# Fails here, before any job runs, with the offending key in the message.
CFG = load_config(config)
OUT = paths.run_dir(CFG)
T = CFG.diffusion.timesteps
N = CFG.experts.n
BASELINE = baseline_model(CFG)
BASELINE_RUNS = baseline_runs(CFG)  # MDM paper Tables 1, 3, 4: the `baselines` target
EIGHT_RUNS = eight_expert_runs()  # MDM Sec. 4.1: the `convergence` target
RUNS = run_names(CFG) + BASELINE_RUNS + EIGHT_RUNS + [REALLOCATED_RUN]
MAIN_RUNS = ["baseline", "mdm"]
STUDY_METHODS = list(CFG.intervals.study.methods)
SELECTED_METHODS = [m for m in method_names() if m in STUDY_METHODS or m == CFG.experts.intervals]
POINTS = list(range(1, CFG.training.eval_points + 1))
ENV = "../envs/mdm.yaml"
# The offline default scores with a classifier trained here; Inception needs no training
# but wants a GPU at paper scale.
INCEPTION = CFG.metrics.features == "inception"


def trigger(section):
    """A config section as a rule's params, so that changing it reruns the rule: Snakemake
    ignores params it cannot represent (dataclasses) when deciding what to rerun."""
    return to_plain(section)


wildcard_constraints:
    model=MODEL_PATTERN,
    run="|".join(RUNS),
    method="|".join(method_names()),
    n=str(N),
    point=r"\d+",


def snapshot_outputs(model="{model}"):
    return [paths.snapshot(OUT, model, p) for p in POINTS]


def choice_path(method):
    return paths.choice(OUT, method, N)


def run_models(run):
    """The models a run routes between. MDM runs wait for their interval checkpoint."""
    if run == "baseline":
        return [BASELINE]
    if run in BASELINE_RUNS:
        return baseline_run_models(run, CFG)
    if run in EIGHT_RUNS:
        return eight_expert_models(CFG)
    if run == REALLOCATED_RUN:  # the eight experts again, on budgets their convergence decided
        return plan_models(read_plan(checkpoints.reallocate_budgets.get().output[0]))
    method, total_iterations = run_recipe(run, CFG)
    choice = read_choice(checkpoints.select_intervals.get(method=method, n=N).output.choice)
    return expert_models(choice.intervals, total_iterations, T, CFG.training.recipe)


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
    return {"diffusion": trigger(CFG.diffusion), "n": N, "seed": CFG.intervals.seed, "method": trigger(own),
            "boundaries": CFG.experts.boundaries if wildcards.method == "paper" else None}


def shared_sources(run):
    """The runs an end-point-only run (a study run, the reallocated run) may take models and
    samples from; [] for runs evaluated over their whole series."""
    if run.startswith("study_"):
        return MAIN_RUNS
    return EIGHT_RUNS[:1] if run == REALLOCATED_RUN else []


def run_points(run):
    """End-point-only runs are compared at their end; the others over their series."""
    return POINTS[-1:] if shared_sources(run) else POINTS


def checkpoint_file(model, point, longer_models=()):
    """A model's snapshot at a point. Its final weights are a longer model's snapshot when one
    of ``longer_models`` (same interval and recipe) has a snapshot at its budget: that model
    is then never trained on its own (mdmlib.training.job.snapshot_source says why this is exact)."""
    if point == POINTS[-1]:
        source = snapshot_source(model, list(longer_models), len(POINTS))
        if source:
            model, point = source
    return paths.snapshot(OUT, model, point)


def run_checkpoints(run, point):
    models = run_models(run)
    snapshots = point_snapshots(run, point, len(models), POINTS[-1])
    # End-point-only runs are served by longer runs' snapshots where budgets meet (an expert
    # stopped at its convergence step is the planned expert's snapshot there).
    longer = [m for source in shared_sources(run) for m in run_models(source)]
    return [checkpoint_file(m, p, longer) for m, p in zip(models, snapshots)]


def point_checkpoints(wildcards):
    return run_checkpoints(wildcards.run, int(wildcards.point))


def sample_sources(run):
    """Runs that may already have sampled a point of ``run``: samples are seeded by the
    sampling settings alone, so the same checkpoints under the same routing give the same
    images. The eight experts' curves share their last point (all experts final); the
    baseline study's ADM runs are the main runs' models when the main split is the paper's."""
    if run in EIGHT_RUNS[1:]:
        return EIGHT_RUNS[:1]
    if run in BASELINE_RUNS:
        return ["baseline"] + (["mdm"] if CFG.experts.intervals == "paper" else [])
    return shared_sources(run)


def point_samples(run, point):
    """A point whose checkpoints and routing are another run's point reuses its samples."""
    sources = sample_sources(run)
    checkpoints = run_checkpoints(run, point) if sources else None
    for source in sources:
        if run_routing(source, CFG) != run_routing(run, CFG):
            continue
        for source_point in POINTS:
            if run_checkpoints(source, source_point) == checkpoints:
                return paths.samples(OUT, source, source_point)
    return paths.samples(OUT, run, point)


def series_samples(wildcards):
    return [point_samples(wildcards.run, p) for p in run_points(wildcards.run)]


def final_outputs():
    tables = [paths.table(OUT, name, ext) for name in ("quality", "efficiency", "interval_study", "intervals")
              for ext in ("csv", "md")]
    figures = [paths.figure(OUT, name, ext) for name in ("fid_vs_cost", "interval_study") for ext in ("png", "pdf")]
    grids = [paths.sample_grid(OUT, run, ext) for run in MAIN_RUNS for ext in ("png", "pdf")]
    analyses = [paths.interval_figures(OUT, m, N) for m in SELECTED_METHODS]
    return tables + figures + grids + analyses + [paths.provenance(OUT)]


def baseline_outputs():
    return [paths.table(OUT, name, ext) for name in ("table1_t_sampling", "table3_baselines", "table4_hybrid")
            for ext in ("csv", "md")]


def convergence_outputs():
    figures = [paths.figure(OUT, name, ext) for name in ("fig2_loss_per_interval", "fig3a_expert_convergence")
               for ext in ("png", "pdf")]
    tables = [paths.table(OUT, name, ext) for name in ("slowest_intervals", "reallocation", "reallocation_summary")
              for ext in ("csv", "md")]
    return figures + tables
