"""MDM Tables 2 and 3 forms for the main runs (`make run`): the quality table at each run's best
point, with the spread over sample sets and each run's paired difference to the baseline."""
from __future__ import annotations

from typing import Mapping

import pandas as pd

from mdmlib.metrics.spread import paired_difference
from mdmlib.report.labels import run_label
from mdmlib.report.tables import SPREAD_LABELS, best_point, spread_cells
from mdmlib.report.verdicts import less_verdict

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


def quality_verdicts(series: dict[str, pd.DataFrame], sets: dict[str, pd.DataFrame], run: str = "mdm",
                     baseline: str = "baseline") -> dict[str, str]:
    """The paper's Table 3 claim (MDM improves on its baseline), per metric, at the best points."""
    best = {r: point_sets(sets[r], int(best_point(series[r])["point"])) for r in (run, baseline)}
    return {SPREAD_LABELS[metric]: less_verdict(run, baseline, shared_set_values(best, metric)).text()
            for metric in PAIRED}
