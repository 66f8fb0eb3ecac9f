"""`snakemake convergence`: the 8-expert study (MDM Sec. 4.1) from a real (smoke) run."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
from conftest import (
    SMOKE_OUT,
    copy_smoke_run,
    planned_jobs,
    snakemake,
)

from mdmlib import paths


def test_eight_equal_experts_are_trained_and_the_baseline_reused(convergence_run):
    workdir, plan = convergence_run
    counts = planned_jobs(plan)
    assert counts["train_model"] == 8 and "train_baseline" not in counts
    realloc = pd.read_csv(paths.table(workdir / SMOKE_OUT, "reallocation", "csv"))
    assert realloc["planned"].tolist() == [5] * 8  # 40 baseline iterations split evenly
    assert realloc["reallocated"].sum() <= 40


def test_each_experts_curve_holds_the_others_at_their_final_snapshot(convergence_run):
    workdir, _ = convergence_run
    out = workdir / SMOKE_OUT
    for k in range(1, 9):
        series = pd.read_csv(paths.series(out, f"expert8_{k}"))
        assert np.isfinite(series["fid"]).all()
        for _, row in series.iterrows():
            steps = [int(s) for s in row["steps"].split()]
            assert [s for i, s in enumerate(steps) if i != k - 1] == [5] * 7
    # The last point (all eight final) is one set of checkpoints: sampled once, scored eight times.
    last = pd.read_csv(paths.series(out, "expert8_1"))["point"].iloc[-1]
    assert [k for k in range(1, 9) if (out / f"samples/expert8_{k}/point_{last}.npz").exists()] == [1]
    fids = {pd.read_csv(paths.series(out, f"expert8_{k}"))["fid"].iloc[-1] for k in range(1, 9)}
    assert len(fids) == 1
    slowest = pd.read_csv(paths.table(out, "slowest_intervals", "csv"))
    assert sorted(slowest["expert"]) == list(range(1, 9))
    for stem in ("fig2_loss_per_interval", "fig3a_expert_convergence"):
        assert (out / f"figures/{stem}.png").read_bytes()[:4] == b"\x89PNG"
        assert (out / f"figures/{stem}.pdf").read_bytes()[:5] == b"%PDF-"


def test_with_nothing_converged_the_reallocated_run_is_the_equal_budget_one(convergence_run):
    workdir, _ = convergence_run
    out = workdir / SMOKE_OUT
    plan = json.loads((out / "convergence/reallocation.json").read_text())
    assert all(e["converged_at"] is None for e in plan["experts"])  # 2 points: the 3-point rule cannot hold
    realloc = pd.read_csv(paths.table(out, "reallocation", "csv"))
    assert realloc["actually_ran"].tolist() == realloc["planned"].tolist()
    summary = pd.read_csv(paths.table(out, "reallocation_summary", "csv"))
    assert summary["FID"].iloc[0] == summary["FID"].iloc[1]  # the same checkpoints and samples


def test_converged_experts_stop_and_the_others_train_on_the_freed_iterations(convergence_run, tmp_path):
    """A rule loose enough that about half the experts converge at their first point: they stop
    there (their snapshot), the others are trained again on larger budgets, and the mixture is scored."""
    workdir = tmp_path / "workflow"
    copy_smoke_run(convergence_run[0], workdir)
    out = workdir / SMOKE_OUT
    changes = [abs(np.diff(pd.read_csv(paths.series(out, f"expert8_{k}"))["fid"].to_numpy())[0]) for k in range(1, 9)]
    threshold = float(np.median(changes))
    (workdir / "rule.yaml").write_text(
        f"convergence: {{max_change: {threshold!r}, consecutive: 1, max_gap_to_best: 1000000000.0}}\n")
    snakemake(workdir, "convergence", "--configfile", "configs/smoke.yaml", "rule.yaml")
    plan = json.loads((out / "convergence/reallocation.json").read_text())
    converged = [e["converged_at"] is not None for e in plan["experts"]]
    assert converged == [c < threshold for c in changes] and 0 < sum(converged) < 8
    realloc = pd.read_csv(paths.table(out, "reallocation", "csv"))
    assert realloc["reallocated"].sum() == 40  # the baseline's budget, redistributed
    for e, ran in zip(plan["experts"], realloc["actually_ran"]):
        if e["converged_at"] is not None:
            assert e["converged_at"] == ran == 2 and e["reallocated"] == 2  # its first snapshot (step 2 of 5)
        else:
            assert ran == e["reallocated"] > 5
            timing = pd.read_csv(paths.timing_csv(out, e["model"]))  # trained for real on the new budget
            assert timing["step"].iloc[-1] == e["reallocated"]
    summary = pd.read_csv(paths.table(out, "reallocation_summary", "csv"))
    assert summary["total iterations"].tolist() == [40, int(realloc["actually_ran"].sum())]
    assert np.isfinite(summary["FID"]).all() and (summary["TC (s)"] > 0).all()
