"""`snakemake tdc`: the baseline pruned and fine-tuned per SNR group, from a real (smoke) run."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import SMOKE_OUT, planned_jobs, snakemake

from mdmlib import paths
from mdmlib.core.intervals import Interval
from mdmlib.intervals.choice import read_choice
from mdmlib.models.unet import layer_widths
from mdmlib.report.claims import NOT_RUN
from mdmlib.training.checkpoint import load_checkpoint, model_from_checkpoint
from mdmlib.training.job import tdc_model_name, without_budget

# configs/smoke.yaml: baseline 40 steps at 2 points (base = its step-20 snapshot), 2 groups,
# 10 fine-tune steps each, k = 0.5 (limits 0.75 F and 1.0 F), pruning [magnitude, proxy]
BASE, FINETUNE = 20, 10


def test_each_group_is_pruned_to_its_limit_and_fine_tuned_from_the_baselines_snapshot(tdc_run):
    workdir, plan = tdc_run
    out = workdir / SMOKE_OUT
    assert "train_baseline" not in planned_jobs(plan)  # the base model is the smoke run's baseline
    groups = read_choice(paths.choice(out, "snr", 2)).intervals
    assert groups[0].lo == 0 and groups[-1].hi == 1000
    for method in ("magnitude", "proxy"):
        name = tdc_model_name(method, BASE, groups[0], 0.75, FINETUNE)
        report = json.loads(open(paths.pruning_report(out, without_budget(name))).read())
        assert report["macs"] <= 0.75 * report["full_macs"] and report["parameters"] < report["base_parameters"]
        pruned = load_checkpoint(paths.pruned(out, without_budget(name)))
        assert pruned["init"]["step"] == BASE and pruned["model_spec"]["arguments"]["block_widths"] \
            == report["widths"]["block_widths"]
        tuned = load_checkpoint(paths.snapshot(out, name, 2))
        assert tuned["step"] == FINETUNE and tuned["interval"] == [groups[0].lo, groups[0].hi]
        assert tuned["init"]["path"].endswith(f"{without_budget(name)}.pt")
        model = model_from_checkpoint(tuned)  # rebuilt from the recorded widths alone
        assert layer_widths(model) == report["widths"]
    # the noisiest group's limit is F: nothing is pruned, every method shares the full-size model
    full = tdc_model_name("proxy", BASE, groups[1], 1.0, FINETUNE)
    assert full.startswith("tdc_full_") and not (out / "tdc" / "pruned" / f"{without_budget(full)}.pt").exists()
    assert load_checkpoint(paths.snapshot(out, full, 2))["init"]["step"] == BASE
    bank = json.loads((out / "tdc" / "pruned" / without_budget(tdc_model_name("proxy", BASE, groups[0], 0.75,
                                                                                FINETUNE)) / "memory_bank.json")
                      .read_text())
    assert len(bank) == 2 and all(entry["macs_ratio"] <= 0.75 for entry in bank)  # 1 round x 2 candidates


def test_tables_figure_and_claims_hold_this_runs_numbers(tdc_run):
    workdir, _ = tdc_run
    out = workdir / SMOKE_OUT
    table1 = pd.read_csv(paths.table(out, "tdc_table1_training", "csv"))
    assert table1["training"].tolist() == ["original training", "TDC w/o pruning", "TDC (proxy)"]
    assert table1["train steps (all)"].tolist() == [40, BASE + 2 * FINETUNE, BASE + 2 * FINETUNE]
    assert table1["MACs / original"].iloc[1] == pytest.approx(1.0) and table1["MACs / original"].iloc[2] < 1.0
    assert np.isfinite(table1[["MACs per step (M)", "parameters per model (M)", "measured TC (s)"]].to_numpy()).all()
    table6 = pd.read_csv(paths.table(out, "tdc_table6_pruning_methods", "csv"))
    assert table6["training"].tolist() == ["original training", "TDC w/o pruning", "TDC (magnitude)", "TDC (proxy)"]
    table5 = pd.read_csv(paths.table(out, "tdc_table5_pruning_vs_scratch", "csv"))
    assert table5["method"].tolist() == ["base model (pretrained)", "magnitude pruning", "proxy pruning",
                                         "scratch training", "scratch training, longer"]
    assert table5["train steps"].tolist() == [BASE, FINETUNE, FINETUNE, FINETUNE, 4 * FINETUNE]
    assert (table5["MACs / F"].iloc[1:] <= 0.75).all() and table5["MACs / F"].iloc[0] == pytest.approx(1.0)
    scratch = load_checkpoint(paths.snapshot(out, tdc_model_name("proxy", BASE, Interval(0, 1000), 0.75,
                                                                 FINETUNE, fresh=True), 2))
    proxy = load_checkpoint(paths.pruned(out, without_budget(tdc_model_name("proxy", BASE, Interval(0, 1000), 0.75,
                                                                             FINETUNE))))
    assert scratch["model_spec"] == proxy["model_spec"] and scratch["init"]["step"] == 0  # same shape, fresh
    groups = pd.read_csv(paths.table(out, "tdc_pruned_groups", "csv"))
    assert (groups["MACs / F"] <= groups["FLOPs limit / F"]).all()
    for ext in ("png", "pdf"):
        assert (out / "figures" / f"tdc_fig3_fid_vs_steps.{ext}").stat().st_size > 1000
    snakemake(workdir, "claims_table_update", "--configfile", "configs/smoke.yaml")  # joins the target's claims file
    claims = pd.read_csv(paths.table(out, "claims", "csv"), keep_default_na=False).set_index("id")
    for claim in ("tdc_table1_no_pruning", "tdc_table1_pruned", "tdc_table5_proxy", "tdc_table6_proxy",
                  "tdc_fig3_two_stage"):
        assert claims.loc[claim, "verdict"] != NOT_RUN, claim
        assert "2 sample sets" in claims.loc[claim, "reason"] or claims.loc[claim, "spread"].endswith("(2 sets)")
