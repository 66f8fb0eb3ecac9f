"""`snakemake convergence`: the 8-expert study (MDM Sec. 4.1) from a real (smoke) run."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import SMOKE_OUT, planned_jobs, run_target_on_smoke_copy


@pytest.fixture(scope="module")
def convergence_run(smoke_run, tmp_path_factory):
    return run_target_on_smoke_copy(smoke_run, tmp_path_factory, "convergence")


def test_eight_equal_experts_are_trained_and_the_baseline_reused(convergence_run):
    workdir, plan = convergence_run
    counts = planned_jobs(plan)
    assert counts["train_model"] == 8 and "train_baseline" not in counts
    realloc = pd.read_csv(workdir / SMOKE_OUT / "tables/reallocation.csv")
    assert realloc["planned"].tolist() == [5] * 8  # 40 baseline iterations split evenly
    assert realloc["reallocated"].sum() <= 40


def test_each_experts_curve_holds_the_others_at_their_final_snapshot(convergence_run):
    workdir, _ = convergence_run
    out = workdir / SMOKE_OUT
    for k in range(1, 9):
        series = pd.read_csv(out / f"metrics/expert8_{k}.csv")
        assert np.isfinite(series["fid"]).all()
        for _, row in series.iterrows():
            steps = [int(s) for s in row["steps"].split()]
            assert [s for i, s in enumerate(steps) if i != k - 1] == [5] * 7
    slowest = pd.read_csv(out / "tables/slowest_intervals.csv")
    assert sorted(slowest["expert"]) == list(range(1, 9))
    for stem in ("fig2_loss_per_interval", "fig3a_expert_convergence"):
        assert (out / f"figures/{stem}.png").read_bytes()[:4] == b"\x89PNG"
        assert (out / f"figures/{stem}.pdf").read_bytes()[:5] == b"%PDF-"
