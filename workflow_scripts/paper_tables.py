"""The MDM paper's Table 3 (quality), Table 2 (efficiency) and Figure 1 from this run."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

import pandas as pd

from mdmlib.reporting import write_paper_tables

series = {run: pd.read_csv(path) for run, path in zip(snakemake.params.runs, snakemake.input.series)}
baseline_seconds = pd.read_csv(snakemake.input.baseline_timing)["elapsed_seconds"].iloc[-1]
write_paper_tables(series, baseline_seconds, snakemake.output, snakemake.params.experiment)
