"""`snakemake multistage`: unified, separate and multi-decoder models from a real (smoke) run."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import SMOKE_OUT, planned_jobs, snakemake

from mdmlib import paths
from mdmlib.intervals.choice import read_choice
from mdmlib.report.claims import NOT_RUN
from mdmlib.report.verdicts import FAILS, HOLDS, UNDECIDED
from mdmlib.training.checkpoint import load_checkpoint, model_from_checkpoint
from mdmlib.training.job import staged_model_name


def test_the_models_are_trained_on_the_optimal_denoisers_stages_and_the_baseline_reused(multistage_run):
    workdir, plan = multistage_run
    out = workdir / SMOKE_OUT
    assert "train_baseline" not in planned_jobs(plan)  # the unified model is the smoke run's baseline
    stages = read_choice(paths.choice(out, "optimal_denoiser", 3)).intervals
    name = staged_model_name(stages, 40, 16, [24, 16, 8])  # configs/smoke.yaml's widths
    ckpt = load_checkpoint(paths.snapshot(out, name, 2))
    assert ckpt["model_spec"]["architecture"] == "multi_decoder" and ckpt["step"] == 40
    assert ckpt["model_spec"]["arguments"]["stage_boundaries"] == [s.lo for s in stages[1:]]
    model = model_from_checkpoint(ckpt)
    assert [d["out"][-1].in_channels for d in model.decoders] == [24, 16, 8]  # configs/smoke.yaml's widths
    separate = pd.read_csv(paths.series(out, "separate"))
    assert separate["steps"].iloc[-1].split() == ["15", "10", "15"]  # |stage| / T of the 40 iterations


def test_tables_and_figure_hold_finite_numbers_at_equal_iterations(multistage_run):
    workdir, _ = multistage_run
    out = workdir / SMOKE_OUT
    cost = pd.read_csv(paths.table(out, "multistage_table5_training_cost", "csv"))
    assert cost["method"].tolist() == ["ADM", "separate U-Net per stage", "multi-stage (shared encoder)"]
    assert cost["iterations"].tolist() == [40, 40, 40]
    assert np.isfinite(cost[["total training MACs (T)", "best FID", "FID at end"]].to_numpy()).all()
    quality = pd.read_csv(paths.table(out, "multistage_table6_precision_recall", "csv"))
    assert quality[["precision", "recall"]].apply(lambda c: c.between(0, 1)).all().all()
    stages = pd.read_csv(paths.table(out, "multistage_stage_costs", "csv")).set_index("part")
    for k in (1, 2, 3):
        assert stages.loc[f"stage {k}", "parameters (M)"] == pytest.approx(
            stages.loc["encoder (shared)", "parameters (M)"] + stages.loc[f"decoder {k}", "parameters (M)"])
    caption = (out / "tables" / "multistage_table5_training_cost.md").read_text()
    assert "paper's claim" in caption and any(v in caption for v in ("holds", "does not hold", "undecided"))
    assert "over 2 sample sets" in caption  # decided on the best points' seed sets, not on one set
    for ext in ("png", "pdf"):
        assert (out / "figures" / f"multistage_fig1d_fid_vs_iterations.{ext}").stat().st_size > 1000


def test_the_ablations_train_only_the_models_no_snapshot_serves(multistage_run):
    workdir, plan = multistage_run
    out = workdir / SMOKE_OUT
    stages = {n: read_choice(paths.choice(out, "optimal_denoiser", n)).intervals for n in (2, 3)}
    # Table 7's narrow-encoder split and Table 9's two stages trained at the ablation budget (20) ...
    for name in (staged_model_name(stages[3], 20, 8, [32, 16, 8]), staged_model_name(stages[2], 20, 16, [24, 8])):
        assert load_checkpoint(paths.snapshot(out, name, 2))["step"] == 20
    # ... while one stage and the main architecture are the first snapshots of the 40-step models
    assert not (out / "models" / "t0-1000_i20").exists()
    assert not (out / "models" / staged_model_name(stages[3], 20, 16, [24, 16, 8])).exists()


def test_the_ablation_tables_give_each_model_its_costs_and_its_spread(multistage_run):
    workdir, _ = multistage_run
    out = workdir / SMOKE_OUT
    table9 = pd.read_csv(paths.table(out, "multistage_table9_stages", "csv"))
    totals = table9[table9["stage"] == "total"].set_index("stages")
    assert totals.index.tolist() == [1, 2, 3] and (totals["sample sets"] == 2).all()
    assert np.isfinite(totals[["FID", "FID sd", "sFID", "parameters (M)", "MACs (M)"]].to_numpy()).all()
    assert table9.groupby("stages").size().tolist() == [2, 4, 5]  # stages, shared, total
    table7 = pd.read_csv(paths.table(out, "multistage_table7_splits", "csv"))
    shared = table7[table7["stage"] == "shared"].set_index("split")["parameters (M)"]
    assert shared.loc[1] < shared.loc[2]  # the shared share small to large
    main = table7[(table7["split"] == 2) & (table7["stage"] == "total")]["FID"].iloc[0]
    assert main == totals.loc[3, "FID"]  # the main split is Table 9's 3-stage run, sampled once
    for stem in ("multistage_table9_stages", "multistage_table7_splits"):
        caption = (out / "tables" / f"{stem}.md").read_text()
        assert "Paper's claim" in caption and any(v in caption for v in ("holds", "does not hold", "undecided"))


def test_the_claims_table_takes_the_multistage_claims_once_the_target_has_run(multistage_run):
    workdir, _ = multistage_run
    out = workdir / SMOKE_OUT
    snakemake(workdir, "claims_table_update", "--configfile", "configs/smoke.yaml")
    claims = pd.read_csv(paths.table(out, "claims", "csv"), keep_default_na=False).set_index("id")
    multistage = claims[claims["target"] == "make multistage"]
    assert len(multistage) == 4 and set(multistage["verdict"]) <= {HOLDS, FAILS, UNDECIDED}
    assert multistage.loc["ms_table9_stages", "ours"].startswith("1 stage: ")
    assert (claims.loc[claims["target"] == "make baselines", "verdict"] == NOT_RUN).all()
