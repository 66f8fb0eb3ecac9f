"""MDM Tables 2 and 3 forms for the main runs (`make run`): the quality table at each run's best
point, with the spread over sample sets and each run's paired difference to the baseline."""
from __future__ import annotations

from typing import Mapping

import pandas as pd

from mdmlib.metrics.spread import paired_difference
from mdmlib.report.claims import ClaimResult, paired_claim, verdict_claim
from mdmlib.report.labels import run_label
from mdmlib.report.tables import SPREAD_LABELS, best_point, spread_cells
from mdmlib.report.verdicts import less_verdict, reached_within_verdict, sooner_verdict

PAIRED = ("fid", "sfid")  # the differences the paper's claims are about


def point_sets(sets: pd.DataFrame, point: int) -> pd.DataFrame:
    """A point's rows, one per sample set, in set order."""
    return sets[sets["point"] == point].sort_values("seed_set")


def shared_set_values(scores: Mapping[str, pd.DataFrame], metric: str) -> dict[str, list[float]]:
    """Each frame's ``metric`` on the seed sets every frame has, in set order: the values a
    paired comparison reads (``scores``: name -> one point's rows, column seed_set)."""
    shared = sorted(set.intersection(*(set(df["seed_set"]) for df in scores.values())))
    return {name: df.set_index("seed_set").loc[shared, metric].tolist() for name, df in scores.items()}


def paired_to(sets: pd.DataFrame, point: int, other_sets: pd.DataFrame, other_point: int, metric: str):
    """``metric`` at ``point`` minus at ``other_point`` of another run, set by set (the sets
    both runs have)."""
    values = shared_set_values({"a": point_sets(sets, point), "b": point_sets(other_sets, other_point)}, metric)
    return paired_difference(values["a"], values["b"])


def quality_table(series: dict[str, pd.DataFrame], sets: dict[str, pd.DataFrame] | None = None,
                  baseline: str = "baseline") -> pd.DataFrame:
    """Each run at its best point (on the mean over sample sets): mean and sd of each metric and,
    for runs beside ``baseline``, the paired difference to the baseline's best point."""
    rows = []
    for run, df in series.items():
        best = best_point(df)
        row = {"method": run_label(run), **spread_cells(best)}
        row |= {"point": int(best["point"]), "steps": best["steps"],
                "num_samples": int(best["num_samples"]), "num_reference": int(best["num_reference"]),
                "features": best["feature_network"]}
        if sets is not None and run != baseline and baseline in series:
            base_point = int(best_point(series[baseline])["point"])
            for metric in PAIRED:
                label = SPREAD_LABELS[metric]
                diff = paired_to(sets[run], int(best["point"]), sets[baseline], base_point, metric)
                row[f"{label} - baseline"], row[f"{label} - baseline se"] = diff.mean, diff.se
        rows.append(row)
    return pd.DataFrame(rows)


def best_point_sets(series: dict[str, pd.DataFrame], sets: dict[str, pd.DataFrame], runs) -> dict[str, pd.DataFrame]:
    """Each run's rows at its best point (on the mean FID), one per sample set."""
    return {r: point_sets(sets[r], int(best_point(series[r])["point"])) for r in runs}


def quality_verdicts(series: dict[str, pd.DataFrame], sets: dict[str, pd.DataFrame], run: str = "mdm",
                     baseline: str = "baseline") -> dict[str, str]:
    """The paper's Table 3 claim (MDM improves on its baseline), per metric, at the best points."""
    best = best_point_sets(series, sets, (run, baseline))
    return {SPREAD_LABELS[metric]: less_verdict(run, baseline, shared_set_values(best, metric)).text()
            for metric in PAIRED}


def main_claims(series: dict[str, pd.DataFrame], sets: dict[str, pd.DataFrame], efficiency: pd.DataFrame,
                costed: dict[str, pd.DataFrame], setting: str, rule_text: str) -> list[ClaimResult]:
    """MDM Tables 2 and 3 claims from the main runs: ``efficiency`` is Table 2 (``table2``),
    ``costed`` each run's series with its NWCT / NTC per point (``normalised_costs``)."""
    best = best_point_sets(series, sets, ("mdm", "baseline"))
    results = []
    for metric in PAIRED:
        values = shared_set_values(best, metric)
        results.append(paired_claim(f"mdm_table3_{metric}", "mdm", "baseline", values, setting))
    # Table 2: MDM's points against the baseline's best, set by set, at their measured cost.
    base_point = int(best_point(series["baseline"])["point"])
    mdm = costed["mdm"].sort_values("point")
    diffs = [(float(ntc), paired_to(sets["mdm"], int(p), sets["baseline"], base_point, "fid"))
             for p, ntc in zip(mdm["point"], mdm["ntc"])]
    rows = efficiency.set_index("method")
    mdm_row, base_row = rows.loc[run_label("mdm")], rows.loc[run_label("baseline")]
    nwct, ntc = mdm_row["NWCT baseline equivalent (%)"], mdm_row["NTC baseline equivalent (%)"]
    ours = ("best FID of ADM not passed on the mean" if pd.isna(ntc)
            else f"baseline equivalent at {nwct:.3g}% NWCT, {ntc:.3g}% NTC")
    results.append(verdict_claim("mdm_table2_equivalent", ours, reached_within_verdict(diffs, 100.0), setting,
                                 f"paired over {diffs[0][1].sets} sets per point"))
    converged = {r: None if pd.isna(row["NWCT converged (%)"]) else float(row["NWCT converged (%)"])
                 for r, row in (("mdm", mdm_row), ("baseline", base_row))}
    ours = ", ".join(f"{run_label(r)} {'not converged' if at is None else f'converged at {at:.3g}% NWCT'}"
                     for r, at in converged.items())
    results.append(verdict_claim("mdm_table2_converged", ours,
                                 sooner_verdict("mdm", converged["mdm"], "baseline", converged["baseline"]), setting,
                                 f"rule: {rule_text}"))
    return results
