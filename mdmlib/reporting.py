"""Assemble the tables and figures that a person reads, with self-describing captions."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from .evaluation import load_samples
from .figures import fid_vs_cost_figure, sample_grid_figure
from .tables import RUN_LABELS, best_point, efficiency_table, quality_table, write_table


def metric_setting(series: dict[str, pd.DataFrame]) -> str:
    """'<feature network>, N generated vs M reference images' (equal for every run, checked)."""
    settings = {(r["feature_network"], int(r["num_samples"]), int(r["num_reference"]))
                for df in series.values() for _, r in df.iterrows()}
    if len(settings) != 1:
        raise ValueError(f"runs were scored in different settings {settings}: their FIDs are not comparable")
    network, n, m = settings.pop()
    return f"features: {network}; {n} generated vs {m} validation images"


def write_paper_tables(series: dict[str, pd.DataFrame], baseline_seconds: float, outputs,
                       experiment: str) -> None:
    """outputs has quality_csv/_md, efficiency_csv/_md and figure (PNG; the PDF goes beside it)."""
    setting = metric_setting(series)
    quality = quality_table(series)
    write_table(quality, outputs.quality_csv, outputs.quality_md,
                f"Table 3 form ({experiment}): each run at its best FID over its evaluation series; {setting}.")
    efficiency = efficiency_table(series, baseline_seconds)
    write_table(efficiency, outputs.efficiency_csv, outputs.efficiency_md,
                f"Table 2 form ({experiment}): wall-clock time (NWCT) and total cost (NTC) in % of the "
                f"baseline's measured full run ({baseline_seconds:.1f} s); MDM experts counted as parallel "
                f"jobs (WCT = slowest expert, TC = sum); '-' = never beat the baseline's best FID; {setting}.")
    fid_vs_cost_figure(series, baseline_seconds, outputs.figure, title=f"{experiment}: {setting}")
    print(quality.to_string(), efficiency.to_string(), sep="\n\n")


def write_sample_grid(series: pd.DataFrame, sample_paths: Sequence[str | Path], grid_size: int,
                      png_path: str | Path) -> None:
    best = best_point(series)
    samples = load_samples(sample_paths[int(best["point"]) - 1])
    run = str(best["run"])
    title = (f"{RUN_LABELS.get(run, run)}, best-FID point {int(best['point'])} "
             f"(steps {best['steps']}), FID {best['fid']:.2f}")
    sample_grid_figure(samples["images"][: grid_size**2], grid_size, png_path, title)
