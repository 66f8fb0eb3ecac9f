"""Train the baseline or one expert to its budget, resuming from its state folder; a rule whose
input names an ``init`` checkpoint fine-tunes that model instead of starting afresh."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0], append=True)  # append: keeps earlier attempts

import sys

from mdmlib.config import load_config
from mdmlib.data.splits import load_split
from mdmlib.runtime.devices import job_device
from mdmlib.training.distributed import launch_data_parallel
from mdmlib.training.job import train_job
from mdmlib.training.loop import run_training, write_training_outputs

cfg = load_config(snakemake.config)
job = train_job(snakemake.wildcards.model, cfg)
processes = cfg.training.data_parallel
device = job_device(snakemake.threads, gpu=True, gpus=processes)
print(f"{job} on {device} with {snakemake.threads} thread(s), {processes} process(es)")
if processes > 1:
    sys.stdout.flush()
    launch_data_parallel(cfg.to_dict(), job.name, snakemake.input.train, snakemake.params.state_dir,
                         processes, snakemake.threads, log_path=snakemake.log[0], init=snakemake.input.get("init"))
else:
    images, _ = load_split(snakemake.input.train)
    run_training(cfg, job, images, snakemake.params.state_dir, device, log=print, init=snakemake.input.get("init"))
write_training_outputs(snakemake.params.state_dir, job, snakemake.output.snapshots,
                       snakemake.output.loss, snakemake.output.timing)
