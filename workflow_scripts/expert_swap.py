"""Which expert holds MDM back: the swap runs' paired FID changes and the held-out loss per expert."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

import pandas as pd

from mdmlib.config import load_config
from mdmlib.core.images import to_model_range
from mdmlib.core.schedule import NoiseSchedule
from mdmlib.data.splits import load_split
from mdmlib.report.writers import metric_setting
from mdmlib.runtime.devices import job_device
from mdmlib.studies.expert_swap import (
                                  expert_and_baseline_losses,
                                  swap_table,
                                  write_swap_study,
)

cfg = load_config(snakemake.config)
device = job_device(snakemake.threads, gpu=True)
schedule = NoiseSchedule.from_name(cfg.diffusion.schedule, cfg.diffusion.timesteps)
images = to_model_range(load_split(snakemake.input.val)[0]).to(device)
held = expert_and_baseline_losses(snakemake.input.experts, snakemake.input.baseline, schedule, images,
                                  cfg.training.seed, device)
held.losses.to_csv(snakemake.output.losses, index=False)

point = snakemake.params.point
mdm_sets = pd.read_csv(snakemake.input.mdm_sets)
swap_sets = {k + 1: pd.read_csv(p) for k, p in enumerate(snakemake.input.swap_sets)}
table = swap_table(held.intervals, held.expert_iterations, mdm_sets, point, swap_sets, point, held.losses,
                   held.baseline_steps, held.expert_names, held.baseline_final)
write_swap_study(table, held.losses, held.expert_names, held.baseline_final, snakemake.output,
                 snakemake.params.experiment,
                 metric_setting({"mdm": mdm_sets, **{f"swap_{k}": df for k, df in swap_sets.items()}}))
