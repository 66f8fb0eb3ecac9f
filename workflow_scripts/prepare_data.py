"""Write the train and validation splits once, with their provenance."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from mdmlib.config import load_config
from mdmlib.data.splits import prepare_dataset

cfg = load_config(snakemake.config)
provenance = prepare_dataset(cfg.data, snakemake.output.train, snakemake.output.val, snakemake.output.provenance)
print(provenance)
