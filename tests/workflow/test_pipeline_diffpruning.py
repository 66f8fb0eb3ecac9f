"""`snakemake diffpruning`: the baseline pruned into a mixture of efficient experts, from a real (smoke) run."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import (
    SMOKE_OUT,
    copy_workflow,
    planned_jobs,
    snakemake,
)

from mdmlib import paths
from mdmlib.intervals.choice import read_choice
from mdmlib.models.elastic import unet_spec
from mdmlib.models.macs import count_parameters
from mdmlib.pruning.scheme import spec_macs
from mdmlib.report.claims import NOT_RUN
from mdmlib.training.checkpoint import load_checkpoint, model_from_checkpoint
from mdmlib.training.job import ExpertName

# configs/smoke.yaml: baseline 40 steps (the pretrained model: its final snapshot), 2 gradient
# intervals, 10 elastic depth, 10 elastic width and 10 fine-tune steps per expert, budget 0.5
BASE, STEPS = 40, 10


def test_each_expert_goes_depth_width_pruned_from_the_baselines_final_snapshot(dp_run):
    workdir, plan = dp_run
    out = workdir / SMOKE_OUT
    jobs = planned_jobs(plan)
    assert "train_baseline" not in jobs  # the pretrained model is the smoke run's baseline
    assert jobs["train_routing_agent"] == 1 and jobs["sampling_throughput"] == 1
    intervals = read_choice(paths.choice(out, "gradient", 2)).intervals
    architecture = json.loads(open(paths.routing_agent(out, 500)).read())
    assert [e["interval"] for e in architecture["experts"]] == [[i.lo, i.hi] for i in intervals]
    for interval, chosen in zip(intervals, architecture["experts"]):
        width = ExpertName("width", interval, BASE, 500, STEPS, STEPS)
        depth, pruned = width.start(), width.pruned(500, STEPS)
        depth_ckpt = load_checkpoint(paths.snapshot(out, depth.name, 2))
        assert depth_ckpt["model_spec"]["arguments"]["elastic"] == "depth"
        assert depth_ckpt["init"]["step"] == BASE and depth_ckpt["init"]["name"] == f"t0-1000_i{BASE}"
        width_ckpt = load_checkpoint(paths.snapshot(out, width.name, 2))
        assert width_ckpt["model_spec"]["arguments"]["elastic"] == "width"
        assert width_ckpt["init"]["path"].endswith(f"diffpruning/sorted/{depth.name}.pt")  # units sorted first
        assert chosen["name"] == width.name
        cut = load_checkpoint(paths.pruned_expert(out, pruned.name.rsplit("_i", 1)[0]))
        assert cut["model_spec"]["architecture"] == "unet" and spec_macs(cut["model_spec"]) == chosen["macs"]
        tuned = load_checkpoint(paths.snapshot(out, pruned.name, 2))
        assert tuned["step"] == STEPS and tuned["model_spec"] == cut["model_spec"]
        model, full = model_from_checkpoint(tuned), model_from_checkpoint(width_ckpt)
        assert count_parameters(model) < count_parameters(full)  # physically smaller
        assert spec_macs(unet_spec(model)) == chosen["macs"] < spec_macs(unet_spec(full))


def test_table1_experts_figures_and_claims_hold_this_runs_numbers(dp_run):
    workdir, _ = dp_run
    out = workdir / SMOKE_OUT
    table = pd.read_csv(paths.table(out, "diffpruning_table1", "csv"))
    assert table["method"].tolist() == ["baseline (unpruned)", "SP, taylor (50%)", "DiffPruning (50%)"]
    assert table["MACs / baseline"].iloc[0] == pytest.approx(1.0) and (table["MACs / baseline"].iloc[1:] < 1).all()
    assert table["parameters (M)"].iloc[2].count("/") == 1  # one size per expert
    speed = table["images/s"] / table["images/s"].iloc[0]
    assert np.allclose(table["speed-up"], speed, rtol=1e-3)
    assert np.allclose(table["speed-up / (1 / MACs ratio)"], speed * table["MACs / baseline"], rtol=1e-3)
    assert np.isfinite(table[["FID", "sFID", "precision", "recall"]].to_numpy()).all()
    assert (table["sample sets"] == 2).all()
    throughput = json.loads(open(paths.throughput(out)).read())
    assert set(throughput["runs"]) == {"baseline", "sp_m500", "dp_m500"}
    experts = pd.read_csv(paths.table(out, "diffpruning_experts", "csv"))
    assert len(experts) == 2 and np.allclose(experts["MACs (M)"], experts["checkpoint MACs (M)"])
    assert experts["agent share of its training"].between(0, 1).all()
    curve = pd.read_csv(paths.routing_agent_curve(out, 500))
    assert curve["iteration"].tolist() == list(range(1, len(curve) + 1)) and len(curve) == STEPS
    for name in ("diffpruning_macs_split", "diffpruning_agent_curve"):
        for ext in ("png", "pdf"):
            assert (out / "figures" / f"{name}.{ext}").stat().st_size > 1000
    snakemake(workdir, "claims_table_update", "--configfile", "configs/smoke.yaml")  # joins the target's claims file
    claims = pd.read_csv(paths.table(out, "claims", "csv"), keep_default_na=False).set_index("id")
    for claim in ("dp_table1_mixture_vs_sp", "dp_table1_throughput", "dp_table1_era_budget"):
        assert claims.loc[claim, "verdict"] != NOT_RUN, claim


def test_a_budget_below_the_smallest_subnetwork_is_refused_before_any_job_naming_the_key(tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    (workdir / "low.yaml").write_text("diffpruning:\n  budgets: [0.5, 0.3]\n")  # the smoke U-Net's floor: 0.32
    proc = snakemake(workdir, "diffpruning", "--configfile", "configs/smoke.yaml", "low.yaml", check=False)
    assert proc.returncode != 0
    assert "config key 'diffpruning.budgets': [0.3] below 0.32" in proc.stdout + proc.stderr
    assert not (workdir / SMOKE_OUT).exists()  # no job ran, nothing written
