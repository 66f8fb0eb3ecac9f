"""TDC's Table II (FLOPs schedules) and Table III (group numbers) forms from this run's measurements."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

from mdmlib.config import load_config
from mdmlib.report.claims import write_claim_results
from mdmlib.studies.tdc_ablations import read_and_write_tdc_ablations

cfg = load_config(snakemake.config)
claims = read_and_write_tdc_ablations(snakemake.input, snakemake.params.runs, snakemake.params.models, cfg,
                                      snakemake.output, snakemake.params.experiment)
write_claim_results(snakemake.output.claims, claims)
