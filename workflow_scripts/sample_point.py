"""DDIM samples of one run at one evaluation point (experts routed by timestep)."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from mdmlib.config import load_config
from mdmlib.sampling.points import sample_point
from mdmlib.runtime.devices import job_device

cfg = load_config(snakemake.config)
device = job_device(snakemake.threads, gpu=True)
sample_point(list(snakemake.input), cfg.sampling, snakemake.output[0], device, log=print,
             intervals=snakemake.params.routing)
