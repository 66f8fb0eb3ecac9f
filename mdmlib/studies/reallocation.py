"""Budget reallocation run for real (MDM Sec. 3): the 8-expert study's convergence points
decide each expert's new budget, and the experts are run again on those budgets.

Converged experts stop at their convergence step: their model is the planned one's snapshot
there (a model trained for k steps is a longer one's step-k snapshot, ``plan.snapshot_source``),
so stopping them costs nothing to re-run. Experts that did not converge get the freed iterations
(``reallocate_budgets``) and are trained on the larger budget. The reallocated mixture is then
scored like any run, and compared with the equal-budget one at its measured cost.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import pandas as pd

from mdmlib.core.intervals import Interval
from mdmlib.core.io import atomic_write_text
from mdmlib.report.tables import write_table
from mdmlib.studies.convergence import (
    eight_expert_boundaries,
    per_expert_curves,
    reallocation_record,
)
from mdmlib.studies.convergence_rule import ConvergenceRule
from mdmlib.training.job import model_name

FORMAT = "mdm-reallocation-v1"


def reallocation_plan(series: Sequence[pd.DataFrame], models: Sequence[str], rule: ConvergenceRule,
                      timesteps: int, baseline_iterations: int, recipe: str,
                      relative_spread: float | None = None) -> dict:
    """Planned, converged and reallocated budgets per expert, and the model each now runs."""
    _, convergence = per_expert_curves(series, models, rule, relative_spread)
    intervals = eight_expert_boundaries(timesteps)
    record = reallocation_record(intervals, timesteps, baseline_iterations, list(convergence["converged_at"]))
    experts = []
    for interval, row in zip(intervals, record.itertuples()):
        converged = None if pd.isna(row.converged_at) else int(row.converged_at)
        steps = converged if converged is not None else int(row.reallocated)
        experts.append({"interval": interval.to_list(), "planned": int(row.planned), "converged_at": converged,
                        "reallocated": int(row.reallocated), "model": model_name(interval, steps, recipe)})
    return {"format": FORMAT, "rule": vars(rule), "relative_spread": relative_spread,
            "baseline_iterations": baseline_iterations, "experts": experts}


def write_plan(plan: dict, path: str | Path) -> None:
    atomic_write_text(path, json.dumps(plan, indent=2) + "\n")


def read_plan(path: str | Path) -> dict:
    try:
        plan = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"reallocation plan {path}: unreadable ({exc})") from None
    if not isinstance(plan, dict) or plan.get("format") != FORMAT or not plan.get("experts"):
        raise ValueError(f"reallocation plan {path}: expected format {FORMAT!r} with experts")
    return plan


def plan_models(plan: dict) -> list[str]:
    return [e["model"] for e in plan["experts"]]


def reallocation_tables(plan: dict, reallocated: pd.DataFrame, equal_budgets: pd.DataFrame,
                        baseline_seconds: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per expert: planned, converged at, reallocated and what the re-run really trained (its
    checkpoints' steps); and the two mixtures side by side: iterations, measured TC, NTC, FID.

    ``reallocated`` and ``equal_budgets`` are evaluation series (their last rows are used).
    """
    run, equal = reallocated.iloc[-1], equal_budgets.iloc[-1]
    ran = [int(s) for s in str(run["steps"]).split()]
    if len(ran) != len(plan["experts"]):
        raise ValueError(f"the reallocated run routes {len(ran)} checkpoints for {len(plan['experts'])} experts")
    per_expert = pd.DataFrame([{
        "expert": k + 1, "interval": Interval(*e["interval"]).label(), "planned": e["planned"],
        "converged_at": e["converged_at"], "reallocated": e["reallocated"], "actually_ran": steps,
    } for k, (e, steps) in enumerate(zip(plan["experts"], ran))])
    per_expert["converged_at"] = per_expert["converged_at"].astype("Int64")
    summary = pd.DataFrame([
        {"run": label, "total iterations": int(row["total_steps"]), "TC (s)": float(row["tc_seconds"]),
         "NTC (%)": 100.0 * float(row["tc_seconds"]) / baseline_seconds if baseline_seconds > 0 else math.nan,
         "WCT (s)": float(row["wct_seconds"]), "FID": float(row["fid"]), "sFID": float(row["sfid"])}
        for label, row in (("eight experts, equal budgets", equal), ("reallocated, early-stopped", run))])
    return per_expert, summary


def write_reallocation_tables(plan: dict, reallocated: pd.DataFrame, equal_budgets: pd.DataFrame,
                              baseline_seconds: float, outputs, experiment: str, setting: str) -> None:
    per_expert, summary = reallocation_tables(plan, reallocated, equal_budgets, baseline_seconds)
    rule_text = f"converged = {ConvergenceRule(**plan['rule']).text()}" + (
        f" (sd = {plan['relative_spread']:.3g} x FID, the main runs' spread)" if plan.get("relative_spread") else "")
    nothing = all(e["converged_at"] is None for e in plan["experts"])
    write_table(per_expert, outputs.reallocation_csv, outputs.reallocation_md,
                f"Budget reallocation ({experiment}), run for real: planned I_e = |tau_e|/T x "
                f"{plan['baseline_iterations']}; converged experts stop at their convergence step and the freed "
                f"iterations go to the others in proportion to their plans; actually_ran = the steps of the "
                f"re-run's checkpoints ({rule_text})."
                + (" No expert converged, so nothing was reallocated." if nothing else ""))
    write_table(summary, outputs.reallocation_summary_csv, outputs.reallocation_summary_md,
                f"Equal budgets against reallocated budgets ({experiment}): measured training seconds of the "
                f"checkpoints each mixture uses (TC = sum, WCT = longest expert; NTC in % of the baseline's full "
                f"run, {baseline_seconds:.1f} s), FID at the end; {setting}.")
    print(per_expert.to_string(), summary.to_string(), sep="\n\n")
