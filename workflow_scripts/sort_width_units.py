"""Sort an elastic depth expert's width units by importance: the elastic width stage's start."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

import json

from mdmlib.pruning.experts import write_sorted_expert

name = snakemake.wildcards.expert
print(f"{name}: sorting the width units of {snakemake.input[0]}")
report = write_sorted_expert(snakemake.input[0], snakemake.output[0], name)
print(json.dumps(report, indent=1))
