"""Train the baseline or one expert to its budget, resuming from its state folder."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "a", buffering=1)  # append: keeps earlier attempts

from mdmlib.config import load_config
from mdmlib.data import load_split
from mdmlib.plan import job_device, train_job
from mdmlib.training import run_training, write_training_outputs

cfg = load_config(snakemake.config)
job = train_job(snakemake.wildcards.model, cfg)
device = job_device(snakemake.threads, gpu=True)
print(f"{job} on {device} with {snakemake.threads} thread(s)")
images, _ = load_split(snakemake.input.train)
run_training(cfg, job, images, snakemake.params.state_dir, device, log=print)
write_training_outputs(snakemake.params.state_dir, job, snakemake.output.snapshots,
                       snakemake.output.loss, snakemake.output.timing)
