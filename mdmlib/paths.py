"""Where the pipeline writes its results: every result path formula, in one place (torch-free).

The rules build their ``output:``/``log:``/``benchmark:`` patterns from these functions, the
input functions their concrete paths, and the benchmarks and tests find a run's files with
them. Every function takes the run folder ``out`` (``run_dir(cfg)``) and returns a string; its
other arguments may be concrete values or Snakemake wildcard placeholders passed as strings:
``snapshot(out, "{model}", 3)`` is ``"<out>/models/{model}/point_3.pt"``.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mdmlib.config import RunConfig

Out = str | os.PathLike[str]  # a run folder: run_dir(cfg), or a Path to it


# The run folder.

def results_dir(dataset: str, experiment: str) -> str:
    """results/<dataset>/<experiment>: everything one configuration makes."""
    return f"results/{dataset}/{experiment}"


def run_dir(cfg: RunConfig) -> str:
    """The run folder of a configuration."""
    return results_dir(cfg.data.dataset, cfg.experiment)


def experiment_label(cfg: RunConfig) -> str:
    """<dataset>/<experiment>: how tables and figures name the run."""
    return f"{cfg.data.dataset}/{cfg.experiment}"


# Data splits (rule prepare_data).

def train_split(out: Out) -> str:
    return f"{out}/data/train.npz"


def val_split(out: Out) -> str:
    return f"{out}/data/val.npz"


def provenance(out: Out) -> str:
    return f"{out}/data/provenance.json"


# Metric features (rules train_feature_net, reference_statistics).

def feature_net(out: Out) -> str:
    return f"{out}/features/feature_net.pt"


def feature_net_info(out: Out) -> str:
    return f"{out}/features/feature_net.json"


def reference_statistics(out: Out) -> str:
    return f"{out}/features/reference_val.npz"


# Models (rule train_model): snapshots at the evaluation points, loss and timing, running state.

def model_dir(out: Out, model: str) -> str:
    return f"{out}/models/{model}"


def snapshot(out: Out, model: str, point: int | str) -> str:
    return f"{model_dir(out, model)}/point_{point}.pt"


def loss_csv(out: Out, model: str) -> str:
    return f"{model_dir(out, model)}/loss.csv"


def timing_csv(out: Out, model: str) -> str:
    return f"{model_dir(out, model)}/timing.csv"


def state_dir(out: Out, model: str) -> str:
    """A training job's running state (not an output): a killed job resumes from it."""
    return f"{out}/state/{model}"


# Interval selection (checkpoint select_intervals).

def choice(out: Out, method: str, n: int | str) -> str:
    return f"{out}/intervals/{method}_n{n}.json"


def interval_figures(out: Out, method: str, n: int | str) -> str:
    """The folder of a selection method's figures."""
    return f"{out}/figures/intervals/{method}_n{n}"


# Samples and metrics (rules sample_point, evaluate_series, seed_spread).

def samples(out: Out, run: str, point: int | str) -> str:
    """A point's sample set 0 (the series' own, the sample grid's)."""
    return f"{out}/samples/{run}/point_{point}.npz"


def extra_samples(out: Out, run: str, point: int | str) -> str:
    """A point's sample sets 1 .. sampling.seed_sets - 1, in one file (runs scored with a spread)."""
    return f"{out}/samples/{run}/point_{point}_sets.npz"


def seed_sets(out: Out, run: str) -> str:
    """Scratch folder of a run's extra sample sets (seed_spread)."""
    return f"{out}/samples/{run}/seed_sets"


def series(out: Out, run: str) -> str:
    """A run's evaluation series: its metrics at every point (the mean over its sample sets)."""
    return f"{out}/metrics/{run}.csv"


def series_sets(out: Out, run: str) -> str:
    """The same series, one row per point and sample set (the pairing key of comparisons)."""
    return f"{out}/metrics/{run}_sets.csv"


def heldout_losses(out: Out) -> str:
    """Held-out epsilon loss per timestep bin of MDM's experts and the baseline's snapshots."""
    return f"{out}/metrics/heldout_loss.csv"


def seed_spread(out: Out, run: str) -> str:
    return f"{out}/metrics/{run}_seeds.csv"


# TDC (rule prune_group): a group's pruned base model, what the pruning did, its audit folder.

def pruned(out: Out, name: str) -> str:
    """The pruned base model that the TDC group model ``name`` (less its budget) fine-tunes."""
    return f"{out}/tdc/pruned/{name}.pt"


def pruned_fresh(out: Out, name: str) -> str:
    """A freshly initialised network of the pruned model's shape (Table V's scratch training)."""
    return f"{out}/tdc/pruned/{name}_fresh.pt"


def pruning_report(out: Out, name: str) -> str:
    return f"{out}/tdc/pruned/{name}.json"


def pruning_audit(out: Out, name: str) -> str:
    """The proxy search's prompts, replies and memory bank."""
    return f"{out}/tdc/pruned/{name}"


# The 8-expert study (checkpoint reallocate_budgets).

def sorted_expert(out: Out, name: str) -> str:
    """An elastic depth expert with its width units sorted by importance: the width stage's start."""
    return f"{out}/diffpruning/sorted/{name}.pt"


def routing_agent(out: Out, budget: int | str) -> str:
    """The Expert Routing Agent's decision at a budget (per mille): each expert's architecture."""
    return f"{out}/diffpruning/agent_m{budget}/architecture.json"


def routing_agent_state(out: Out, budget: int | str) -> str:
    """The agent's running state at a budget: a killed agent job resumes from it."""
    return f"{state_dir(out, f'routing_agent_m{budget}')}/latest.pt"


def routing_agent_curve(out: Out, budget: int | str) -> str:
    """The agent's training curve: loss term, MACs term and the mixture's MACs per iteration."""
    return f"{out}/diffpruning/agent_m{budget}/curve.csv"


def pruned_expert(out: Out, name: str) -> str:
    """An elastic width expert physically pruned to the agent's architecture ('dpf_...' less its budget)."""
    return f"{out}/diffpruning/pruned/{name}.pt"


def throughput(out: Out) -> str:
    """Measured DDIM sampling throughput of each DiffPruning table run, on this machine."""
    return f"{out}/diffpruning/throughput.json"


def reallocation_plan(out: Out) -> str:
    return f"{out}/convergence/reallocation.json"


# Tables and figures.

def table(out: Out, name: str, ext: str) -> str:
    return f"{out}/tables/{name}.{ext}"


def claims(out: Out, name: str) -> str:
    """The claims a study's rule decided (``mdmlib.report.claims``); ``claims_table`` joins them."""
    return f"{out}/claims/{name}.csv"


def report_page(out: Out) -> str:
    return f"{out}/report.html"


def figure(out: Out, name: str, ext: str) -> str:
    return f"{out}/figures/{name}.{ext}"


def sample_grid(out: Out, run: str, ext: str) -> str:
    return figure(out, f"samples_{run}", ext)


# Logs and benchmarks: <rule>.log, or <rule>/<name>.log for rules with wildcards.

def log(out: Out, rule: str, name: str | None = None) -> str:
    return f"{out}/logs/{rule}.log" if name is None else f"{out}/logs/{rule}/{name}.log"


def benchmark(out: Out, rule: str, name: str | None = None) -> str:
    return f"{out}/benchmarks/{rule}.tsv" if name is None else f"{out}/benchmarks/{rule}/{name}.tsv"
