"""Score one run's best point on several disjoint sample sets (the tables' std)."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

import pandas as pd

from mdmlib.config import load_config
from mdmlib.runtime.devices import job_device
from mdmlib.studies.baselines import checkpoints_by_point, seed_spread

cfg = load_config(snakemake.config)
device = job_device(snakemake.threads, gpu=True)
by_point = checkpoints_by_point(list(snakemake.input.checkpoints), len(snakemake.params.models),
                                snakemake.params.points)
spread = seed_spread(snakemake.wildcards.run, pd.read_csv(snakemake.input.series), by_point, cfg.sampling,
                     cfg.metrics, snakemake.input.get("net"), snakemake.input.reference, snakemake.params.sets,
                     snakemake.params.scratch, device, routing=snakemake.params.routing, log=print)
spread.to_csv(snakemake.output[0], index=False)
