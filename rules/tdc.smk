# TDC training (Algorithm 1): the baseline's snapshot at tdc.base_iterations is the base model;
# (DiffPruning's single-model baseline is pruned by the same rule from the final baseline);
# per SNR group it is pruned to the group's FLOPs limit (rule prune_group, one job per group and
# method) and fine-tuned on the group's timesteps (rule finetune_group). Not part of `rule all`:
# `snakemake --cores all tdc` (`make tdc`).


rule prune_group:
    input:
        base=lambda wc: base_snapshot(parse_tdc_name(f"{wc.pruned}_i1")[1]),
        train=rules.prepare_data.output.train,
        val=rules.prepare_data.output.val,
    output:
        checkpoint=paths.pruned(OUT, "{pruned}"),
        fresh=paths.pruned_fresh(OUT, "{pruned}"),
        report=paths.pruning_report(OUT, "{pruned}"),
    params:
        tdc=trigger(CFG.tdc),
        diffusion=trigger(CFG.diffusion),
        audit=lambda wc: paths.pruning_audit(OUT, wc.pruned),
    wildcard_constraints:
        pruned=PRUNED_NAME.pattern,
    threads: CFG.training.threads
    resources:
        gpu=1,
    log:
        paths.log(OUT, "prune_group", "{pruned}"),
    benchmark:
        paths.benchmark(OUT, "prune_group", "{pruned}")
    conda:
        ENV
    script:
        "../workflow_scripts/prune_group.py"


# A group model starts from its pruned base model (or, without pruning, from the base itself).
use rule train_model as finetune_group with:
    input:
        train=rules.prepare_data.output.train,
        init=tdc_init,
    wildcard_constraints:
        model=TDC_NAME.pattern,


ruleorder: finetune_group > train_model


rule tdc_tables:
    input:
        sets=[paths.series_sets(OUT, run) for run in TDC_TABLE_RUNS],
        spreads=[paths.seed_spread(OUT, run) for run in PLAN.tdc_runs],
        timings=lambda wc: [paths.timing_csv(OUT, m) for run in TDC_TABLE_RUNS for m in run_models(run)],
        checkpoints=lambda wc: [c for run in TDC_TABLE_RUNS for c in PLAN.checkpoints(run, POINTS[-1])],
        reports=tdc_pruning_reports,
    output:
        **{key: report(path, caption="../report/tdc.rst", category="TDC")
           if key.endswith(("_png", "_csv")) else path for key, path in output_files(TDC_OUTPUTS).items()},
        claims=paths.claims(OUT, "tdc_tables"),
    params:
        runs=TDC_TABLE_RUNS,
        models=lambda wc: {run: run_models(run) for run in TDC_TABLE_RUNS},
        base=lambda wc: (tdc_base_iterations(CFG), TDC_BASE_POINT),
        experiment=paths.experiment_label(CFG),
    log:
        paths.log(OUT, "tdc_tables"),
    conda:
        ENV
    script:
        "../workflow_scripts/tdc_tables.py"


rule tdc:
    input:
        output_files(TDC_OUTPUTS).values(),


# Tables II and III and Fig. 6 forms: FLOPs schedules, group numbers and k, each run at its end on the same sets.
rule tdc_ablations_tables:
    input:
        base=paths.snapshot(OUT, BASELINE, TDC_BASE_POINT),
        spreads=[paths.seed_spread(OUT, run) for run in PLAN.tdc_ablation_runs],
        checkpoints=lambda wc: [c for run in PLAN.tdc_ablation_runs for c in PLAN.checkpoints(run, POINTS[-1])],
    output:
        **{key: report(path, caption="../report/tdc_ablations.rst", category="TDC")
           if key.endswith(("_png", "_csv")) else path for key, path in output_files(TDC_ABLATION_OUTPUTS).items()},
        claims=paths.claims(OUT, "tdc_ablations_tables"),
    params:
        runs=PLAN.tdc_ablation_runs,
        models=lambda wc: {run: run_models(run) for run in PLAN.tdc_ablation_runs},
        experiment=paths.experiment_label(CFG),
    log:
        paths.log(OUT, "tdc_ablations_tables"),
    conda:
        ENV
    script:
        "../workflow_scripts/tdc_ablations_tables.py"


rule tdc_ablations:
    input:
        output_files(TDC_ABLATION_OUTPUTS).values(),
