"""The multi-stage paper's Fig. 1(d), Table 5 and Table 6 forms and the per-stage costs from this run."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

import pandas as pd

from mdmlib.config import load_config
from mdmlib.report.claims import write_claim_results
from mdmlib.report.writers import metric_setting
from mdmlib.studies.multistage import (
                    model_costs,
                    set0_series_and_spreads,
                    write_multistage_study,
)

cfg = load_config(snakemake.config)
runs, models = snakemake.params.runs, snakemake.params.models
sets = {run: pd.read_csv(path) for run, path in zip(runs, snakemake.input.series)}
series, spreads = set0_series_and_spreads(sets, pd.read_csv(snakemake.input.spread))
timings = {m: pd.read_csv(path) for m, path in zip(sum(models.values(), []), snakemake.input.timings)}
costs = model_costs(dict(zip(sum(models.values(), []), snakemake.input.checkpoints)), models["multistage"][0],
                    models["baseline"][0], cfg.diffusion.timesteps, cfg.sampling.steps)
claims = write_multistage_study(series, models, timings, costs, cfg.training.batch_size, snakemake.output,
                                snakemake.params.experiment, metric_setting(series), spreads)
write_claim_results(snakemake.output.claims, claims)
