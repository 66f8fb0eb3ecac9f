# Config validation, result paths and input functions shared by all rules.
from mdmlib.config import load_config
from mdmlib.plan import run_models, train_jobs

# Fails here, before any job runs, with the offending key in the message.
CFG = load_config(config)
OUT = f"results/{CFG.data.dataset}/{CFG.experiment}"
JOBS = train_jobs(CFG)
RUNS = run_models(CFG)
POINTS = list(range(1, CFG.training.eval_points + 1))
ENV = "../envs/mdm.yaml"


wildcard_constraints:
    model="|".join(JOBS),
    run="|".join(RUNS),
    point=r"\d+",


def snapshot_outputs(model="{model}"):
    return [f"{OUT}/models/{model}/point_{p}.pt" for p in POINTS]


def point_checkpoints(wildcards):
    """The checkpoints an evaluation point routes between: one per expert of the run."""
    return [f"{OUT}/models/{m}/point_{wildcards.point}.pt" for m in RUNS[wildcards.run]]


def series_samples(wildcards):
    return [f"{OUT}/samples/{wildcards.run}/point_{p}.npz" for p in POINTS]


def final_outputs():
    tables = [f"{OUT}/tables/{name}.{ext}" for name in ("quality", "efficiency") for ext in ("csv", "md")]
    figures = [f"{OUT}/figures/fid_vs_cost.{ext}" for ext in ("png", "pdf")]
    grids = [f"{OUT}/figures/samples_{run}.{ext}" for run in RUNS for ext in ("png", "pdf")]
    return tables + figures + grids + [f"{OUT}/data/provenance.json"]
