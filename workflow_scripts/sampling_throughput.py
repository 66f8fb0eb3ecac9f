"""DDIM sampling throughput (images/s) of every DiffPruning table run, timed in one job on this machine."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

import json

from mdmlib.config import load_config
from mdmlib.core.io import atomic_write_text
from mdmlib.runtime.devices import job_device
from mdmlib.sampling.throughput import run_throughputs
from mdmlib.studies.tdc import per_run

cfg = load_config(snakemake.config)
device = job_device(snakemake.threads, gpu=True)  # torch.set_num_threads(snakemake.threads) on the CPU
runs = snakemake.params.runs
checkpoints = per_run(list(snakemake.input.checkpoints), runs, snakemake.params.models)
result = run_throughputs(checkpoints, cfg, cfg.diffpruning.throughput_batch, cfg.diffpruning.throughput_repeats,
                         device)
for run, measured in result["runs"].items():
    print(f"{run}: {measured['images_per_second']:.2f} images/s ({measured['seconds_per_batch']:.3f} s per batch "
          f"of {measured['batch']}, DDIM {measured['steps']} steps)")
atomic_write_text(snakemake.output[0], json.dumps(result, indent=2))
