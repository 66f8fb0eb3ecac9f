"""FID, sFID, precision and recall at every evaluation point of one run."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

from mdmlib.config import load_config
from mdmlib.metrics.series import evaluate_series, point_means
from mdmlib.runtime.devices import job_device

cfg = load_config(snakemake.config)
device = job_device(snakemake.threads, gpu=bool(snakemake.resources.gpu))
sets = evaluate_series(snakemake.wildcards.run, snakemake.input.samples, snakemake.input.get("net"),
                       snakemake.input.reference, cfg.metrics, points=snakemake.params.points,
                       device=device, log=print, extra_paths=list(snakemake.input.extra) or None)
sets.to_csv(snakemake.output.sets, index=False)
point_means(sets).to_csv(snakemake.output.series, index=False)
