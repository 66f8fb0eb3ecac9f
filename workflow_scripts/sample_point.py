"""DDIM samples of one run at one evaluation point (experts routed by timestep): set 0, or the
point's other sample sets (params.seed_sets)."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

from mdmlib.config import load_config
from mdmlib.runtime.devices import job_device
from mdmlib.sampling.points import sample_point

cfg = load_config(snakemake.config)
device = job_device(snakemake.threads, gpu=True)
sample_point(list(snakemake.input), cfg.sampling, snakemake.output[0], device, log=print,
             intervals=snakemake.params.routing, seed_sets=snakemake.params.get("seed_sets", [0]))
