# DiffPruning: the trained baseline pruned into a mixture of efficient experts. Per interval
# (diffpruning.intervals), an expert fine-tuned from the baseline with elastic depth, then (units
# sorted by importance) with elastic width (rule elastic_expert); per MACs budget, the Expert
# Routing Agent picks every expert's sub-network (rule train_routing_agent); each expert is cut to
# it (rule prune_expert) and fine-tuned (rule elastic_expert again). The single-model baseline is
# TDC's prune_group on (0, T]. Not part of `rule all`: `snakemake --cores all diffpruning`.


# Elastic depth and width stages and the pruned experts' fine-tune: train_model with a start.
use rule train_model as elastic_expert with:
    input:
        train=rules.prepare_data.output.train,
        init=dp_init,
    wildcard_constraints:
        model=DP_NAME.pattern,


ruleorder: elastic_expert > train_model


rule sort_width_units:
    input:
        paths.snapshot(OUT, "{expert}", POINTS[-1]),
    output:
        paths.sorted_expert(OUT, "{expert}"),
    wildcard_constraints:
        expert=r"dpd_[a-z0-9_-]+",
    log:
        paths.log(OUT, "sort_width_units", "{expert}"),
    conda:
        ENV
    script:
        "../workflow_scripts/sort_width_units.py"


rule train_routing_agent:
    input:
        train=rules.prepare_data.output.train,
        experts=lambda wc: [paths.snapshot(OUT, name, POINTS[-1]) for name in dp_width_experts()],
    output:
        architecture=paths.routing_agent(OUT, "{budget}"),
        curve=paths.routing_agent_curve(OUT, "{budget}"),
    params:
        agent=trigger(CFG.diffpruning.agent),
        diffusion=trigger(CFG.diffusion),
        names=lambda wc: dp_width_experts(),
        state=lambda wc: paths.routing_agent_state(OUT, wc.budget),
    wildcard_constraints:
        budget=r"\d+",
    threads: CFG.training.threads
    resources:
        gpu=1,
    log:
        paths.log(OUT, "train_routing_agent", "m{budget}"),
    benchmark:
        paths.benchmark(OUT, "train_routing_agent", "m{budget}")
    conda:
        ENV
    script:
        "../workflow_scripts/train_routing_agent.py"


# '{pruned}' is the fine-tuned expert's name less its budget: dpf_m<budget>_t<lo>-<hi>_..._w<n>.
rule prune_expert:
    input:
        expert=lambda wc: paths.snapshot(OUT, ExpertName.parse(f"{wc.pruned}_i1").start().name, POINTS[-1]),
        architecture=lambda wc: paths.routing_agent(OUT, ExpertName.parse(f"{wc.pruned}_i1").budget_permille),
    output:
        paths.pruned_expert(OUT, "{pruned}"),
    wildcard_constraints:
        pruned=r"dpf_m\d+_t\d+-\d+_b\d+_p\d+_d\d+_w\d+",
    log:
        paths.log(OUT, "prune_expert", "{pruned}"),
    conda:
        ENV
    script:
        "../workflow_scripts/prune_expert.py"


# Throughput on this machine: every run's DDIM sampling timed in one job that holds all cores.
rule sampling_throughput:
    input:
        checkpoints=lambda wc: [c for run in DP_TABLE_RUNS for c in PLAN.checkpoints(run, POINTS[-1])],
    output:
        paths.throughput(OUT),
    params:
        runs=DP_TABLE_RUNS,
        models=lambda wc: {run: run_models(run) for run in DP_TABLE_RUNS},
        settings=trigger(CFG.diffpruning),
        sampling=SAMPLING,
    # All of --cores on a workstation; on a cluster (no --cores) the sampling jobs' threads.
    threads: workflow.resource_settings.cores or CFG.sampling.threads
    resources:
        gpu=1,
    log:
        paths.log(OUT, "sampling_throughput"),
    conda:
        ENV
    script:
        "../workflow_scripts/sampling_throughput.py"


rule diffpruning_tables:
    input:
        sets=[paths.series_sets(OUT, run) for run in DP_TABLE_RUNS],
        checkpoints=lambda wc: [c for run in DP_TABLE_RUNS for c in PLAN.checkpoints(run, POINTS[-1])],
        agents=[paths.routing_agent(OUT, b) for b in DP_BUDGETS],
        curves=[paths.routing_agent_curve(OUT, b) for b in DP_BUDGETS],
        throughput=paths.throughput(OUT),
        timings=lambda wc: [paths.timing_csv(OUT, m) for run in PLAN.diffpruning_runs for m in run_models(run)],
    output:
        **{key: report(path, caption="../report/diffpruning.rst", category="DiffPruning")
           if key.endswith(("_png", "_csv")) else path for key, path in output_files(DP_OUTPUTS).items()},
        claims=paths.claims(OUT, "diffpruning_tables"),
    params:
        runs=DP_TABLE_RUNS,
        models=lambda wc: {run: run_models(run) for run in DP_TABLE_RUNS},
        budgets=DP_BUDGETS,
        experiment=paths.experiment_label(CFG),
    log:
        paths.log(OUT, "diffpruning_tables"),
    conda:
        ENV
    script:
        "../workflow_scripts/diffpruning_tables.py"


rule diffpruning:
    input:
        output_files(DP_OUTPUTS).values(),
