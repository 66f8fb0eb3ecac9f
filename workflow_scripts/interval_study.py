"""The interval-selection comparison (multi-stage Table 4 form) and the table of chosen intervals."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

import pandas as pd

from mdmlib.intervals.choice import read_choice
from mdmlib.report.claims import write_claim_results
from mdmlib.studies.interval_study import write_interval_study

choices = {m: read_choice(p) for m, p in zip(snakemake.params.methods, snakemake.input.choices)}
series = {m: pd.read_csv(p) for m, p in zip(snakemake.params.study_methods, snakemake.input.series)}
sets = {f"study_{m}": pd.read_csv(p) for m, p in zip(snakemake.params.study_methods, snakemake.input.sets)}
sets["baseline"] = pd.read_csv(snakemake.input.baseline_sets)
claims = write_interval_study(choices, series, pd.read_csv(snakemake.input.baseline), snakemake.params.iterations,
                              snakemake.output, snakemake.params.experiment, sets)
write_claim_results(snakemake.output.claims, claims)
