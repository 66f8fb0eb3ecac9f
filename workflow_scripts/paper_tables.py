"""The MDM paper's Table 3 (quality), Table 2 (efficiency) and Figure 1 from this run."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

import pandas as pd

from mdmlib.config import load_config
from mdmlib.report.claims import write_claim_results
from mdmlib.report.writers import write_paper_tables

cfg = load_config(snakemake.config)
series = {run: pd.read_csv(path) for run, path in zip(snakemake.params.runs, snakemake.input.series)}
sets = {run: pd.read_csv(path) for run, path in zip(snakemake.params.runs, snakemake.input.sets)}
models = snakemake.params.models
timings = {m: pd.read_csv(path) for m, path in zip(sum(models.values(), []), snakemake.input.timings)}
rule = cfg.convergence.rule()
claims = write_paper_tables(series, models, timings, rule, snakemake.output, snakemake.params.experiment, sets)
write_claim_results(snakemake.output.claims, claims)
