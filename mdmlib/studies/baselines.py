"""MDM paper Tables 1, 3 and 4: baselines with and without MDM, with their uncertainty.

Each run's best point is chosen on its evaluation series (sample set 0); that point is
then sampled again with ``sets - 1`` disjoint seed sets, and the tables give the mean and
standard deviation over the sets. One training seed per run: the spread is that of
sampling, not of training.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import torch

from mdmlib.config import MetricsConfig, SamplingConfig
from mdmlib.core.io import atomic_write_text
from mdmlib.metrics.series import evaluate_series
from mdmlib.report.claims import ClaimResult, paired_claim, untested
from mdmlib.report.labels import run_label
from mdmlib.report.tables import best_point, markdown_table
from mdmlib.report.writers import metric_setting
from mdmlib.sampling.points import sample_point
from mdmlib.studies.main import shared_set_values

METRICS = ("fid", "sfid", "precision", "recall")
COLUMNS = {"fid": "FID", "sfid": "sFID", "precision": "precision", "recall": "recall"}


def checkpoints_by_point(paths: Sequence[str], models_per_point: int, points: Sequence[int]) -> dict[int, list[str]]:
    """Point number -> its checkpoints, from a flat point-major list over ``points``."""
    if len(paths) != models_per_point * len(points):
        raise ValueError(f"{len(paths)} checkpoints for {len(points)} points of {models_per_point} models")
    return {p: list(paths[i * models_per_point:(i + 1) * models_per_point]) for i, p in enumerate(points)}


def seed_spread(run: str, series: pd.DataFrame, checkpoints_by_point: dict[int, list[str]], sampling: SamplingConfig,
                metrics: MetricsConfig, feature_net_path: str | None, reference_path: str, sets: int,
                scratch_dir: str | Path, device: torch.device, routing: list[list[int]] | None = None,
                log: Callable[[str], None] = print) -> pd.DataFrame:
    """The run's best point scored on ``sets`` disjoint sample sets (set 0 is the series' own)."""
    best = best_point(series)
    point = int(best["point"])
    rows = [{**best.to_dict(), "seed_set": 0}]
    scratch = Path(scratch_dir)
    scratch.mkdir(parents=True, exist_ok=True)
    for seed_set in range(1, sets):
        path = scratch / f"point_{point}_set{seed_set}.npz"
        sample_point(checkpoints_by_point[point], sampling, path, device, log, intervals=routing, seed_sets=[seed_set])
        scored = evaluate_series(run, [path], feature_net_path, reference_path, metrics, points=[point],
                                 device=device, log=log)
        rows.append({**scored.iloc[0].to_dict(), "seed_set": seed_set})
        path.unlink()
    return pd.DataFrame(rows)


def summary_row(run: str, spread: pd.DataFrame) -> dict:
    row = {"method": run_label(run), "run": run, "point": int(spread["point"].iloc[0]),
           "steps": spread["steps"].iloc[0], "sample sets": len(spread)}
    for m in METRICS:
        row[COLUMNS[m]] = spread[m].mean()
        row[f"{COLUMNS[m]} std"] = spread[m].std(ddof=1)
    return row


def _markdown(rows: pd.DataFrame, bold_groups: Sequence[Sequence[str]], caption: str) -> str:
    """'mean (std)' cells as in the paper; the lowest FID of each group in bold."""
    shown = pd.DataFrame({"method": rows["method"]})
    for col in COLUMNS.values():
        shown[col] = [f"{m:.4g} ({s:.2g})" for m, s in zip(rows[col], rows[f"{col} std"])]
    for group in bold_groups:
        members = rows[rows["run"].isin(group)]
        if len(members) > 1:
            best = members["FID"].idxmin()
            shown.loc[best, "FID"] = f"**{shown.loc[best, 'FID']}**"
    shown["point (steps)"] = [f"{p} ({s})" for p, s in zip(rows["point"], rows["steps"])]
    return markdown_table(shown, caption)


def baseline_claims(spreads: dict[str, pd.DataFrame], recipes: Sequence[str], setting: str) -> list[ClaimResult]:
    """MDM Tables 1, 3 (P2W, Soft-truncation) and 4 claims, FID paired over the seed sets."""
    def fid_claim(claim, a, b, labels):
        if a not in spreads or b not in spreads:
            return untested(claim, f"this run has no {a!r} or {b!r} (baselines.recipes)", setting)
        values = shared_set_values({labels[0]: spreads[a], labels[1]: spreads[b]}, "fid")
        return paired_claim(claim, *labels, values, setting)

    claims = [fid_claim("mdm_table1_uniform", "base_adm", "base_importance", ("uniform", "importance"))]
    for recipe in ("p2w", "soft_truncation"):
        if recipe in recipes:
            claims.append(fid_claim(f"mdm_table3_{recipe}", f"mdm_{recipe}", f"base_{recipe}",
                                    (f"{run_label(f'mdm_{recipe}')}", f"{run_label(f'base_{recipe}')}")))
        else:
            claims.append(untested(f"mdm_table3_{recipe}", f"baselines.recipes lacks {recipe}", setting))
    claims.append(fid_claim("mdm_table4_hybrid", "hybrid", "base_adm", ("hybrid", "ADM")))
    return claims


def write_baseline_tables(spreads: dict[str, pd.DataFrame], recipes: Sequence[str], outputs,
                          experiment: str) -> list[ClaimResult]:
    """outputs has table1/3/4 _t_sampling/_baselines/_hybrid csv and md paths; returns the claims."""
    setting = metric_setting(spreads)
    sets = {len(df) for df in spreads.values()}
    how = (f"mean (std) over {'/'.join(map(str, sorted(sets)))} disjoint sample sets at each run's best-FID point "
           f"(chosen on the first set); one training seed per run; {setting}")
    tables = {
        "table1_t_sampling": (["base_adm", "base_importance"], [["base_adm", "base_importance"]],
                              "Table 1 form: the ADM baseline with uniform against loss-aware importance sampling "
                              "of t, equal iterations"),
        "table3_baselines": ([f"{k}_{r}" for r in recipes for k in ("base", "mdm")],
                             [[f"base_{r}", f"mdm_{r}"] for r in recipes],
                             "Table 3 form: each baseline with and without MDM; bold: the better FID of each pair"),
        "table4_hybrid": (["base_adm", "hybrid"], [["base_adm", "hybrid"]],
                          "Table 4 form: MDM's tau_A expert with the ADM baseline for tau_B and tau_C, against ADM"),
    }
    for name, (runs, groups, title) in tables.items():
        rows = pd.DataFrame([summary_row(r, spreads[r]) for r in runs])
        caption = f"{title} ({experiment}): {how}."
        atomic_write_text(getattr(outputs, f"{name}_csv"), rows.to_csv(index=False))
        atomic_write_text(getattr(outputs, f"{name}_md"), _markdown(rows, groups, caption))
        print(caption, rows.to_string(), sep="\n")
    return baseline_claims(spreads, recipes, f"{experiment}; {setting}")
