"""Train DiffPruning's Expert Routing Agent for one MACs budget (per mille) on the frozen width experts."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

from mdmlib.config import load_config
from mdmlib.data.splits import load_split
from mdmlib.routing.agent_training import train_routing_agent, write_agent_outputs
from mdmlib.runtime.devices import job_device

cfg = load_config(snakemake.config)
device = job_device(snakemake.threads, gpu=True)  # also torch.set_num_threads(snakemake.threads)
budget = int(snakemake.wildcards.budget) / 1000
train, _ = load_split(snakemake.input.train)
print(f"agent for {budget:.3f} of the full MACs over {list(snakemake.params.names)} on {device}")
result = train_routing_agent(list(snakemake.input.experts), train, budget, cfg, names=snakemake.params.names,
                             device=device, state_path=snakemake.params.state)  # a killed job resumes
write_agent_outputs(result, snakemake.output.architecture, snakemake.output.curve)
for expert in result["experts"]:
    print(f"{expert['name']}: {expert['macs_ratio']:.3f} F, groups {expert['groups']}, heads {expert['heads']}, "
          f"depth {expert['depth']}")
print(f"mixture {result['macs_ratio']:.3f} F (budget {budget:.3f}), agent share {result['agent_share']:.2f}, "
      f"{result['seconds']:.1f} s")
