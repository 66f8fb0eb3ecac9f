"""The run's report: one self-contained HTML page, the claims table first."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

from mdmlib.report.html import report_page

report_page(f"Timestep-interval experts: {snakemake.params.experiment}", snakemake.input.claims,
            snakemake.params.sections, snakemake.output[0],
            note="Tables as the pipeline wrote them (CSV and Markdown under tables/), figures as PNG "
                 "(PDF beside them under figures/).")
print(f"report: {snakemake.output[0]}")
