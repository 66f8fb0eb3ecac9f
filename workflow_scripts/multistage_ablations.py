"""The multi-stage paper's Table 9 form (number of stages) and Table 7 form (encoder/decoder splits)."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

import pandas as pd

from mdmlib.config import load_config
from mdmlib.report.claims import write_claim_results
from mdmlib.sampling.ddim import ddim_timesteps
from mdmlib.studies.multistage_ablations import part_rows, write_ablation_tables
from mdmlib.training.checkpoint import load_checkpoint, model_from_checkpoint

cfg = load_config(snakemake.config)
runs = snakemake.params.runs
trajectory = ddim_timesteps(cfg.diffusion.timesteps, cfg.sampling.steps)
parts = {run: part_rows(model_from_checkpoint(load_checkpoint(path)), cfg.diffusion.timesteps, trajectory)
         for run, path in zip(runs, snakemake.input.checkpoints)}
spreads = {run: pd.read_csv(path) for run, path in zip(runs, snakemake.input.spreads)}
stage_runs = {int(n): run for n, run in snakemake.params.stage_runs.items()}
claims = write_ablation_tables(stage_runs, snakemake.params.split_runs, cfg.experts.n, snakemake.params.main_split,
                               parts, spreads, snakemake.params.budget, snakemake.output, snakemake.params.experiment)
write_claim_results(snakemake.output.claims, claims)
