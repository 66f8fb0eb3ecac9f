"""Tables as CSV + Markdown, and the best point of an evaluation series."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from mdmlib.core.io import atomic_write_text


def best_point(series: pd.DataFrame) -> pd.Series:
    """The first point reaching the run's lowest FID (the paper's 'best score')."""
    return series.loc[series["fid"].idxmin()]


def markdown_table(df: pd.DataFrame, caption: str, digits: int = 4) -> str:
    """A GitHub Markdown table; NaN prints as '-' (not reached / not applicable)."""
    def cell(v) -> str:
        if isinstance(v, float):
            return "-" if math.isnan(v) else f"{v:.{digits}g}" if abs(v) < 1e-3 and v else f"{v:.{digits}f}".rstrip("0").rstrip(".")
        return str(v)

    head = "| " + " | ".join(df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([f"**{caption}**", "", head, rule, *body, ""])


def write_table(df: pd.DataFrame, csv_path: str | Path, md_path: str | Path, caption: str) -> None:
    atomic_write_text(csv_path, df.to_csv(index=False))
    atomic_write_text(md_path, markdown_table(df, caption))


SPREAD_LABELS = {"fid": "FID", "sfid": "sFID", "precision": "precision", "recall": "recall"}


def spread_cells(point: pd.Series) -> dict:
    """A series point's metrics with their sd over its sample sets (``<metric>_sd``; NaN when it
    has one set) and how many sets, under the tables' labels."""
    cells = {}
    for metric, label in SPREAD_LABELS.items():
        cells[label] = float(point[metric])
        cells[f"{label} sd"] = float(point.get(f"{metric}_sd", math.nan))
    cells["sample sets"] = int(point.get("seed_sets", 1))
    return cells


def write_spread_table(table: pd.DataFrame, csv_path: str | Path, md_path: str | Path, caption: str,
                       pairs: dict[str, str] | None = None) -> None:
    """CSV with '<m>' and '<m> sd' columns; Markdown with 'mean (sd)' cells, as the paper prints
    them. ``pairs`` maps further value columns to their standard-error columns ('mean (se x)')."""
    atomic_write_text(csv_path, table.to_csv(index=False))
    shown = table.copy()
    for label in SPREAD_LABELS.values():
        if f"{label} sd" in shown:
            shown[label] = [_mean_spread(m, s) for m, s in zip(table[label], table[f"{label} sd"])]
            shown = shown.drop(columns=f"{label} sd")
    for value, se in (pairs or {}).items():
        if value in shown:
            shown[value] = [_mean_spread(m, s, "se ") for m, s in zip(table[value], table[se])]
            shown = shown.drop(columns=se)
    if "sample sets" in shown:
        shown["sample sets"] = ["" if pd.isna(n) else str(int(n)) for n in table["sample sets"]]
    atomic_write_text(md_path, markdown_table(shown, caption))


def _mean_spread(mean, spread, prefix: str = "") -> str:
    if pd.isna(mean):
        return "-"
    return f"{mean:.4g}" if pd.isna(spread) else f"{mean:.4g} ({prefix}{spread:.2g})"
