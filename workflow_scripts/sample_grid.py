"""A grid of samples from the run's best-FID evaluation point."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

import pandas as pd

from mdmlib.report.writers import write_sample_grid

series = pd.read_csv(snakemake.input.series)
write_sample_grid(series, snakemake.input.samples, snakemake.params.grid_size, snakemake.output.png)
print(f"grid of the best-FID point of {snakemake.wildcards.run} -> {snakemake.output.png} (+ PDF)")
