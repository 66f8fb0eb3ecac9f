"""Write the train and validation splits once, with their provenance."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

from mdmlib.config import load_config
from mdmlib.data.splits import prepare_dataset

cfg = load_config(snakemake.config)
provenance = prepare_dataset(cfg.data, snakemake.output.train, snakemake.output.val, snakemake.output.provenance)
print(provenance)
