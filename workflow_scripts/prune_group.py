"""Prune the base model for one TDC group (its method, interval and FLOPs limit from the name)."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

from mdmlib.config import load_config
from mdmlib.data.splits import load_split
from mdmlib.pruning.group import prune_for_group
from mdmlib.training.job import parse_tdc_name

cfg = load_config(snakemake.config)
name = snakemake.wildcards.pruned
method, _, interval, permille, _ = parse_tdc_name(f"{name}_i1")
train, _ = load_split(snakemake.input.train)
val, _ = load_split(snakemake.input.val)
print(f"{name}: pruning {snakemake.input.base} with {method} for {interval.label()} to {permille / 1000:.3f} F")
prune_for_group(snakemake.input.base, method, interval, permille / 1000, train, val, cfg, name,
                snakemake.output.checkpoint, snakemake.output.report, snakemake.params.audit, snakemake.output.fresh)
