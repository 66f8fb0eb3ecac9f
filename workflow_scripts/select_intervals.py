"""Choose the experts' intervals with one method; write its JSON result and figures."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

from mdmlib.config import load_config
from mdmlib.intervals.choice import write_choice
from mdmlib.intervals.selection import select_intervals
from mdmlib.runtime.devices import job_device

cfg = load_config(snakemake.config)
device = job_device(snakemake.threads, gpu=bool(snakemake.resources.gpu))
choice = select_intervals(snakemake.wildcards.method, cfg, device, train_path=snakemake.input.get("train"),
                          model_path=snakemake.input.get("model"), figure_dir=snakemake.output.figures,
                          n=int(snakemake.wildcards.n))
print(f"{choice.method}: intervals {[i.label() for i in choice.intervals]}")
write_choice(choice, snakemake.output.choice)
