"""Cache the feature statistics of the reference images (EDM fid.py's `ref` step): the validation
split, the training split or both (metrics.reference)."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

from mdmlib.config import load_config
from mdmlib.data.splits import load_split
from mdmlib.metrics.reference import compute_reference, make_extractor, reference_images
from mdmlib.runtime.devices import job_device

cfg = load_config(snakemake.config)
device = job_device(snakemake.threads, gpu=bool(snakemake.resources.gpu))
extractor = make_extractor(cfg.metrics, snakemake.input.get("net"), cfg.data.dataset)
images = reference_images(cfg.metrics.reference, load_split(snakemake.input.val)[0], load_split(snakemake.input.train)[0])
compute_reference(extractor, images, snakemake.output[0], device=device, split=cfg.metrics.reference)
print(f"reference statistics of {len(images)} {cfg.metrics.reference} images ({extractor.name}) -> {snakemake.output[0]}")
