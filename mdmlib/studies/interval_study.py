"""The interval-selection comparison: MDM trained on each method's intervals at equal
total iterations (the multi-stage paper's Table 4 form), and the table of chosen intervals.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from mdmlib.core.intervals import Interval, expert_budgets
from mdmlib.intervals.choice import IntervalChoice
from mdmlib.metrics.spread import PairedDifference
from mdmlib.report.claims import ClaimResult, difference_claim, untested
from mdmlib.report.figures import plt, save_figure
from mdmlib.report.labels import method_label
from mdmlib.report.tables import (
    SPREAD_LABELS,
    spread_cells,
    write_spread_table,
    write_table,
)
from mdmlib.report.writers import metric_setting
from mdmlib.studies.main import paired_to

# The number each method optimised, when it has one (named by the method modules).
SCORE_KEYS = ("residual", "objective", "J")


def intervals_text(intervals: list[Interval]) -> str:
    return " ".join(i.label().replace(" ", "") for i in intervals)


def method_score(details: dict) -> float:
    for key in SCORE_KEYS:
        value = details.get(key)
        if isinstance(value, (int, float)):
            return float(value)
    return math.nan


def study_table(choices: dict[str, IntervalChoice], series: dict[str, pd.DataFrame],
                baseline_series: pd.DataFrame, iterations: int,
                sets: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """One row per method at the end of its run (mean and sd over its sample sets); the single
    model at the same budget when the baseline's series has that point. With ``sets`` (the
    study runs' and 'baseline''s by point and set), each method's FID and sFID minus the single
    model's, paired set by set."""
    rows = []
    same_budget = baseline_series[baseline_series["total_steps"] == iterations]
    for method, df in series.items():
        choice, last = choices[method], df.iloc[-1]
        budgets = expert_budgets(choice.intervals, choice.timesteps, iterations)
        row = {"method": method_label(method), "intervals": intervals_text(choice.intervals),
               "iterations per expert": " ".join(map(str, budgets)), **spread_cells(last),
               "total iterations": int(last["total_steps"])}
        if sets is not None and len(same_budget):
            for metric in ("fid", "sfid"):
                diff = paired_to(sets[f"study_{method}"], int(last["point"]), sets["baseline"],
                                 int(same_budget.iloc[0]["point"]), metric)
                label = SPREAD_LABELS[metric]
                row[f"{label} - single model"], row[f"{label} - single model se"] = diff.mean, diff.se
        rows.append(row)
    if len(same_budget):
        b, T = same_budget.iloc[0], next(iter(choices.values())).timesteps
        rows.append({"method": "single model (no split)", "intervals": f"(0,{T}]",
                     "iterations per expert": str(iterations), **spread_cells(b), "total iterations": iterations})
    return pd.DataFrame(rows)


def choices_table(choices: dict[str, IntervalChoice]) -> pd.DataFrame:
    """Every chosen split, plus the optimal denoiser's splits for the other interval counts."""
    rows = []
    for method, choice in choices.items():
        rows.append({"method": method_label(method), "n": choice.n,
                     "boundaries (t)": " ".join(map(str, choice.boundaries)),
                     "intervals": intervals_text(choice.intervals), "score": method_score(choice.details)})
        for n, boundaries in choice.details.get("boundaries_by_n", {}).items():
            if int(n) != choice.n:
                other = IntervalChoice(method, choice.timesteps, tuple(boundaries))
                rows.append({"method": method_label(method), "n": other.n,
                             "boundaries (t)": " ".join(map(str, other.boundaries)),
                             "intervals": intervals_text(other.intervals), "score": math.nan})
    return pd.DataFrame(rows).sort_values(["method", "n"], kind="stable").reset_index(drop=True)


def study_figure(choices: dict[str, IntervalChoice], table: pd.DataFrame, png_path: str | Path,
                 title: str = "") -> None:
    """Each method's intervals as bars over t, labelled with the FID they reached."""
    methods = list(choices)
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(methods) + 1.4))
    fids = dict(zip(table["method"], table["FID"]))
    for row, method in enumerate(methods):
        for k, interval in enumerate(choices[method].intervals):
            ax.barh(row, interval.size, left=interval.lo, color=f"C{k}", edgecolor="white", height=0.7)
        fid = fids.get(method_label(method), math.nan)
        ax.text(choices[method].timesteps * 1.01, row, f"FID {fid:.3f}", va="center")
    ax.set_yticks(range(len(methods)), [method_label(m) for m in methods])
    ax.invert_yaxis()
    ax.set_xlabel("timestep t (experts from clean, left, to noisy, right)")
    ax.set_xlim(0, next(iter(choices.values())).timesteps)
    if title:
        ax.set_title(title)
    save_figure(fig, png_path)


def write_interval_study(choices: dict[str, IntervalChoice], series: dict[str, pd.DataFrame],
                         baseline_series: pd.DataFrame, iterations: int, outputs, experiment: str,
                         sets: dict[str, pd.DataFrame] | None = None) -> list[ClaimResult]:
    """outputs has study_csv/_md, intervals_csv/_md and figure (PNG; the PDF goes beside it).
    Returns the Sec. 4.2 claim."""
    setting = metric_setting({**series, "baseline": baseline_series})
    table = study_table(choices, series, baseline_series, iterations, sets)
    n_sets = int(table["sample sets"].min())
    write_spread_table(table, outputs.study_csv, outputs.study_md,
                       f"Interval selection ({experiment}): MDM with each method's intervals, {iterations} iterations "
                       f"in total per method (split by interval size), scored at the end of training on {n_sets} "
                       f"disjoint sample sets, mean (sd); '- single model' = the paired difference to one model "
                       f"trained on all timesteps for the same iterations, set by set, mean (se); {setting}.",
                       pairs={f"{m} - single model": f"{m} - single model se" for m in ("FID", "sFID")})
    chosen = choices_table(choices)
    write_table(chosen, outputs.intervals_csv, outputs.intervals_md,
                f"Intervals chosen by each method ({experiment}); t = 1..T, (lo, hi]; score = the quantity the "
                "method optimised (attention: fit residual; gradient: J; optimal denoiser: objective).")
    study_figure({m: choices[m] for m in series}, table, outputs.figure, title=f"{experiment}: {setting}")
    print(table.to_string(), chosen.to_string(), sep="\n\n")
    return [attention_split_claim(table, f"{experiment}; {setting}")]


def attention_split_claim(table: pd.DataFrame, setting: str) -> ClaimResult:
    """MDM Sec. 4.2: the attention-concentration split against the single model at equal iterations."""
    claim = "mdm_sec42_attention_split"
    rows = table.set_index("method")
    attention, single = method_label("attention"), "single model (no split)"
    if attention not in rows.index or single not in rows.index or "FID - single model" not in rows:
        return untested(claim, "the study lacks the attention method or a single model at its budget", setting)
    row = rows.loc[attention]
    diff = PairedDifference(float(row["FID - single model"]), float(row["FID - single model se"]),
                            int(row["sample sets"]))
    ours = (f"attention {row['intervals']}: FID {row['FID']:.4g} ({row['FID sd']:.2g}), single model "
            f"{rows.loc[single, 'FID']:.4g} ({rows.loc[single, 'FID sd']:.2g})")
    return difference_claim(claim, ours, diff, setting, "attention - single model")
