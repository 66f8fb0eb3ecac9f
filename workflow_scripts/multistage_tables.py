"""The multi-stage paper's Fig. 1(d), Table 5 and Table 6 forms and the per-stage costs from this run."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

import pandas as pd

from mdmlib.config import load_config
from mdmlib.report.tables import best_point
from mdmlib.report.writers import metric_setting
from mdmlib.studies.multistage import model_costs, write_multistage_study

cfg = load_config(snakemake.config)
runs, models = snakemake.params.runs, snakemake.params.models
sets = {run: pd.read_csv(path) for run, path in zip(runs, snakemake.input.series)}
series = {run: df[df["seed_set"] == 0].reset_index(drop=True) for run, df in sets.items()}  # one set a point, alike
timings = {m: pd.read_csv(path) for m, path in zip(sum(models.values(), []), snakemake.input.timings)}
costs = model_costs(dict(zip(sum(models.values(), []), snakemake.input.checkpoints)), models["multistage"][0],
                    models["baseline"][0], cfg.diffusion.timesteps, cfg.sampling.steps)
# The claim is read at each best point on several seed sets: the multi-stage model's from its
# seed spread, the baseline's from the sets `make run` scored at every point.
base_point = int(best_point(series["baseline"])["point"])
spreads = {"multistage": pd.read_csv(snakemake.input.spread),
           "baseline": sets["baseline"][sets["baseline"]["point"] == base_point]}
write_multistage_study(series, models, timings, costs, cfg.training.batch_size, snakemake.output,
                       snakemake.params.experiment, metric_setting(series), spreads)
