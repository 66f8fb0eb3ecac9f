"""Cut an elastic width expert to the sub-network the Expert Routing Agent chose for its interval."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

import json

from mdmlib.pruning.experts import write_pruned_expert

name = snakemake.wildcards.pruned
print(f"{name}: pruning {snakemake.input.expert} to {snakemake.input.architecture}")
report = write_pruned_expert(snakemake.input.expert, snakemake.input.architecture, snakemake.output[0], name)
print(json.dumps(report, indent=1))
print(f"{name}: {report['macs_ratio']:.3f} of the full MACs, {report['parameters']} of "
      f"{report['base_parameters']} parameters")
