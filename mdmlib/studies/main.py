"""MDM Tables 2 and 3 forms for the main runs (`make run`): the quality table at each run's best point."""
from __future__ import annotations

import pandas as pd

from mdmlib.report.labels import run_label
from mdmlib.report.tables import best_point


def quality_table(series: dict[str, pd.DataFrame]) -> pd.DataFrame:
    rows = []
    for run, df in series.items():
        best = best_point(df)
        rows.append({"method": run_label(run), "FID": best["fid"], "sFID": best["sfid"],
                     "precision": best["precision"], "recall": best["recall"],
                     "point": int(best["point"]), "steps": best["steps"],
                     "num_samples": int(best["num_samples"]), "num_reference": int(best["num_reference"]),
                     "features": best["feature_network"]})
    return pd.DataFrame(rows)
