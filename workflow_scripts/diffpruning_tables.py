"""DiffPruning's Table 1, pruned experts, MACs split and agent curve forms from this run's measurements."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

from mdmlib.config import load_config
from mdmlib.report.claims import write_claim_results
from mdmlib.studies.diffpruning import read_and_write_diffpruning_study

cfg = load_config(snakemake.config)
claims = read_and_write_diffpruning_study(snakemake.input, snakemake.params.runs, snakemake.params.models,
                                          snakemake.params.budgets, cfg, snakemake.output,
                                          snakemake.params.experiment)
write_claim_results(snakemake.output.claims, claims)
