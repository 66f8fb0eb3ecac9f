"""`snakemake baselines`: the MDM paper's Tables 1, 3 and 4 from a real (smoke) run."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import SMOKE_OUT, planned_jobs

from mdmlib import paths


def test_only_the_new_recipes_are_trained(baselines_run):
    workdir, plan = baselines_run
    lines = planned_jobs(plan)
    # P2W, Soft-truncation and importance baselines; P2W and Soft-truncation experts.
    assert lines["train_baseline"] == 3 and lines["train_model"] == 6
    assert "prepare_data" not in lines and "train_feature_net" not in lines
    # ADM with and without MDM are the main runs (same models on the paper split, same seeds):
    # their samples are reused.
    runs = len(list((workdir / SMOKE_OUT / "metrics").glob("*_seeds.csv")))  # one per baseline-study run
    assert runs == 8 and lines["sample_point"] == 2 * (runs - 2)


def test_the_adm_runs_score_the_main_runs_samples(baselines_run):
    out = baselines_run[0] / SMOKE_OUT
    for study_run, main_run in (("base_adm", "baseline"), ("mdm_adm", "mdm")):
        assert not list((out / f"samples/{study_run}").glob("point_*.npz"))  # (seed_sets/ is the spread's)
        study, main = pd.read_csv(paths.series(out, study_run)), pd.read_csv(paths.series_sets(out, main_run))
        main = main[main["seed_set"] == 0].reset_index(drop=True)  # the main runs score more sets a point
        pd.testing.assert_series_equal(study["fid"], main["fid"])


def test_tables_hold_this_runs_means_and_spreads(baselines_run):
    workdir, _ = baselines_run
    out = workdir / SMOKE_OUT
    table3 = pd.read_csv(paths.table(out, "table3_baselines", "csv"))
    assert list(table3["method"]) == ["ADM", "ADM+MDM", "P2W", "P2W+MDM", "Soft-trunc", "Soft-trunc+MDM"]
    for col in ("FID", "FID std", "sFID", "precision", "recall"):
        assert np.isfinite(table3[col]).all(), col
    for _, row in table3.iterrows():
        spread = pd.read_csv(paths.seed_spread(out, row["run"]))
        assert len(spread) == 2 and spread["seed_set"].tolist() == [0, 1]
        assert row["FID"] == pytest.approx(spread["fid"].mean())
        assert row["FID std"] == pytest.approx(spread["fid"].std(ddof=1))
        series = pd.read_csv(paths.series(out, row["run"]))
        assert spread["fid"].iloc[0] == pytest.approx(series["fid"].min())  # set 0 is the series' best point
    md = (out / "tables/table3_baselines.md").read_text()
    assert md.count("**") >= 2 * 4  # the caption and one bold FID per baseline pair
    assert "64 generated vs 64 validation images" in md and "sample sets" in md
    table1 = pd.read_csv(paths.table(out, "table1_t_sampling", "csv"))
    assert list(table1["run"]) == ["base_adm", "base_importance"]
    table4 = pd.read_csv(paths.table(out, "table4_hybrid", "csv"))
    assert list(table4["run"]) == ["base_adm", "hybrid"]
    samples = np.load(paths.samples(out, "hybrid", int(table4["point"].iloc[1])))
    assert list(samples["checkpoint_names"]) == ["t0-1000_i40", "t800-1000_i8"]
