"""The MDM paper's Tables 1, 3 and 4 from the seed spreads of the baseline runs."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

import pandas as pd

from mdmlib.studies.baselines import write_baseline_tables
from mdmlib.config import load_config

cfg = load_config(snakemake.config)
spreads = {run: pd.read_csv(p) for run, p in zip(snakemake.params.runs, snakemake.input.spreads)}
write_baseline_tables(spreads, cfg.baselines.recipes, snakemake.output, snakemake.params.experiment)
