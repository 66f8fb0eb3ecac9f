"""The reallocation run's plan and tables (MDM Sec. 3), on synthetic 8-expert series."""
from __future__ import annotations

import pandas as pd
import pytest

from mdmlib.studies.convergence_rule import ConvergenceRule
from mdmlib.studies.reallocation import (
    plan_models,
    read_plan,
    reallocation_plan,
    reallocation_tables,
    write_plan,
)

RULE = ConvergenceRule(max_change=0.5, consecutive=2, max_gap_to_best=1.0)
BUDGET = 100  # 800 baseline iterations over eight equal experts; snapshots at 25, 50, 75, 100
MODELS = [f"t{125 * k}-{125 * (k + 1)}_i{BUDGET}" for k in range(8)]
FLAT, FALLING = [10.0, 10.0, 10.0, 10.0], [20.0, 15.0, 10.0, 5.0]  # converged at point 1 / never


def series_row(steps, fid, tc=0.0, wct=0.0):
    return {"point": 4, "steps": " ".join(map(str, steps)), "total_steps": sum(steps), "fid": fid, "sfid": fid + 1,
            "tc_seconds": tc, "wct_seconds": wct}


def eight_series():
    """Expert k varies over its snapshots, the others at their budget; experts 1-4 are flat."""
    series = []
    for k in range(8):
        fids = FLAT if k < 4 else FALLING
        rows = []
        for point, (step, fid) in enumerate(zip((25, 50, 75, 100), fids), start=1):
            steps = [BUDGET] * 8
            steps[k] = step
            rows.append({**series_row(steps, fid), "point": point})
        series.append(pd.DataFrame(rows))
    return series


def test_converged_experts_stop_at_their_snapshot_and_the_rest_share_what_they_freed(tmp_path):
    plan = reallocation_plan(eight_series(), MODELS, RULE, timesteps=1000, baseline_iterations=800, recipe="adm")
    experts = plan["experts"]
    assert [e["converged_at"] for e in experts] == [25] * 4 + [None] * 4
    assert [e["reallocated"] for e in experts] == [25] * 4 + [175] * 4  # 4 x 75 freed, shared evenly
    assert sum(e["reallocated"] for e in experts) == 800
    assert plan_models(plan)[:2] == ["t0-125_i25", "t125-250_i25"] and plan_models(plan)[-1] == "t875-1000_i175"
    write_plan(plan, tmp_path / "plan.json")
    assert read_plan(tmp_path / "plan.json") == plan
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="expected format"):
        read_plan(tmp_path / "bad.json")


def test_tables_report_what_the_rerun_trained_and_both_mixtures_costs():
    plan = reallocation_plan(eight_series(), MODELS, RULE, timesteps=1000, baseline_iterations=800, recipe="adm")
    rerun = pd.DataFrame([series_row([25] * 4 + [175] * 4, 4.0, tc=500.0, wct=90.0)])
    equal = pd.DataFrame([series_row([BUDGET] * 8, 5.0, tc=400.0, wct=50.0)])
    per_expert, summary = reallocation_tables(plan, rerun, equal, baseline_seconds=1000.0)
    assert per_expert["actually_ran"].tolist() == [25] * 4 + [175] * 4
    assert per_expert["planned"].tolist() == [BUDGET] * 8
    assert summary["total iterations"].tolist() == [800, 800]
    assert summary["NTC (%)"].tolist() == pytest.approx([40.0, 50.0])
    assert summary["FID"].tolist() == [5.0, 4.0]
    with pytest.raises(ValueError, match="routes 2 checkpoints"):
        reallocation_tables(plan, pd.DataFrame([series_row([1, 2], 4.0)]), equal, 1000.0)
