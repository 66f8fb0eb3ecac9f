"""The 8-expert study: Fig. 2, Fig. 3(a), the slowest intervals and the budget reallocation."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

import pandas as pd

from mdmlib.config import load_config
from mdmlib.report.claims import write_claim_results
from mdmlib.report.writers import write_convergence_study
from mdmlib.studies.reallocation import read_plan

cfg = load_config(snakemake.config)
claims = write_convergence_study([pd.read_csv(p) for p in snakemake.input.series], snakemake.params.models,
                                 pd.read_csv(snakemake.input.baseline_loss),
                                 [pd.read_csv(p) for p in snakemake.input.expert_losses],
                                 cfg.convergence.rule(), read_plan(snakemake.input.plan),
                                 pd.read_csv(snakemake.input.reallocated), pd.read_csv(snakemake.input.baseline_timing),
                                 snakemake.output, snakemake.params.experiment)
write_claim_results(snakemake.output.claims, claims)
