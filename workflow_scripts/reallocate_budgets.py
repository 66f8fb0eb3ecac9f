"""The 8-expert study's convergence points -> each expert's reallocated budget and model."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

import pandas as pd

from mdmlib.config import load_config
from mdmlib.studies.convergence_rule import ConvergenceRule
from mdmlib.studies.reallocation import reallocation_plan, write_plan

cfg = load_config(snakemake.config)
plan = reallocation_plan([pd.read_csv(p) for p in snakemake.input.series], snakemake.params.models,
                         ConvergenceRule(**vars(cfg.convergence)), cfg.diffusion.timesteps,
                         cfg.training.baseline_iterations, cfg.training.recipe)
for expert in plan["experts"]:
    print(expert)
write_plan(plan, snakemake.output[0])
