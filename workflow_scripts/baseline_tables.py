"""The MDM paper's Tables 1, 3 and 4 from the seed spreads of the baseline runs."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

import pandas as pd

from mdmlib.config import load_config
from mdmlib.report.claims import write_claim_results
from mdmlib.studies.baselines import write_baseline_tables

cfg = load_config(snakemake.config)
spreads = {run: pd.read_csv(p) for run, p in zip(snakemake.params.runs, snakemake.input.spreads)}
claims = write_baseline_tables(spreads, cfg.baselines.recipes, snakemake.output, snakemake.params.experiment)
write_claim_results(snakemake.output.claims, claims)
