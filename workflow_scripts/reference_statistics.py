"""Cache the feature statistics of the validation split (EDM fid.py's `ref` step)."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

from mdmlib.config import load_config
from mdmlib.data.splits import load_split
from mdmlib.metrics.reference import compute_reference, make_extractor
from mdmlib.runtime.devices import job_device

cfg = load_config(snakemake.config)
device = job_device(snakemake.threads, gpu=bool(snakemake.resources.gpu))
extractor = make_extractor(cfg.metrics, snakemake.input.get("net"), cfg.data.dataset)
images, _ = load_split(snakemake.input.val)
compute_reference(extractor, images, snakemake.output[0], device=device)
print(f"reference statistics of {len(images)} validation images ({extractor.name}) -> {snakemake.output[0]}")
