"""The claims table: every claims file of this run joined with the papers' claims."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

from mdmlib.report.claims import read_claim_results, write_claims_table

table = write_claims_table(read_claim_results(snakemake.input), snakemake.output.csv, snakemake.output.md,
                           snakemake.params.experiment)
print(table.to_string())
