"""Which expert holds MDM back: the swap runs' paired FID changes and the held-out loss per expert."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

import pandas as pd

from mdmlib.config import load_config
from mdmlib.core.images import to_model_range
from mdmlib.core.intervals import Interval
from mdmlib.core.schedule import NoiseSchedule
from mdmlib.data.splits import load_split
from mdmlib.report.writers import metric_setting
from mdmlib.runtime.devices import job_device
from mdmlib.studies.expert_swap import (
    heldout_losses,
    loss_bins,
    swap_table,
    write_swap_study,
)
from mdmlib.training.checkpoint import load_checkpoint, model_from_checkpoint

cfg = load_config(snakemake.config)
device = job_device(snakemake.threads, gpu=True)
schedule = NoiseSchedule.from_name(cfg.diffusion.schedule, cfg.diffusion.timesteps)
images = to_model_range(load_split(snakemake.input.val)[0]).to(device)
seed = cfg.training.seed

experts = [load_checkpoint(p) for p in snakemake.input.experts]
intervals = [Interval(*c["interval"]) for c in experts]
bins = loss_bins(intervals)
frames = []
for k, ckpt in enumerate(experts):  # each expert on its own interval's bins
    mine = [b for owner, b in bins if owner == k]
    frames.append(heldout_losses({ckpt["name"]: model_from_checkpoint(ckpt).to(device)}, schedule, images, mine, seed))
baseline_steps = {}
for path in snakemake.input.baseline:  # the baseline's snapshots on every bin
    ckpt = load_checkpoint(path)
    name = f"{ckpt['name']}@{ckpt['step']}"
    baseline_steps[name] = int(ckpt["step"])
    frames.append(heldout_losses({name: model_from_checkpoint(ckpt).to(device)}, schedule, images,
                                 [b for _, b in bins], seed))
losses = pd.concat(frames, ignore_index=True)
losses.to_csv(snakemake.output.losses, index=False)

point = snakemake.params.point
mdm_sets = pd.read_csv(snakemake.input.mdm_sets)
swap_sets = {k + 1: pd.read_csv(p) for k, p in enumerate(snakemake.input.swap_sets)}
baseline_final = max(baseline_steps, key=baseline_steps.get)
names = [c["name"] for c in experts]
table = swap_table(intervals, [c["iterations"] for c in experts], mdm_sets, point, swap_sets, point, losses,
                   baseline_steps, names, baseline_final)
write_swap_study(table, losses, names, baseline_final, snakemake.output, snakemake.params.experiment,
                 metric_setting({"mdm": mdm_sets, **{f"swap_{k}": df for k, df in swap_sets.items()}}))
