"""The 8-expert study's convergence points -> each expert's reallocated budget and model."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

import pandas as pd

from mdmlib.config import load_config
from mdmlib.studies.convergence_rule import relative_fid_spread
from mdmlib.studies.reallocation import reallocation_plan, write_plan

cfg = load_config(snakemake.config)
rule = cfg.convergence.rule()
# The eight experts' curves are one sample set per point: a rule in sd takes the main runs' spread.
spread = relative_fid_spread([pd.read_csv(p) for p in snakemake.input.spread_from]) if rule.in_sd else None
plan = reallocation_plan([pd.read_csv(p) for p in snakemake.input.series], snakemake.params.models, rule,
                         cfg.diffusion.timesteps, cfg.training.baseline_iterations, cfg.training.recipe, spread)
for expert in plan["experts"]:
    print(expert)
write_plan(plan, snakemake.output[0])
