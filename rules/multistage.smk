# The multi-stage paper's comparisons: the unified model (the baseline), separate U-Nets per stage
# (MDM's experts on the same stages) and the multi-decoder U-Net (shared encoder, a decoder per
# stage), at equal iterations and samples, on the stages of `multistage.intervals`. Not part of
# `rule all`: `snakemake --cores all multistage` (`make multistage`).


rule multistage_tables:
    input:
        # every point's set 0: the baseline is scored on more sets in `make run`, the others on one
        series=[paths.series_sets(OUT, run) for run in MULTISTAGE_TABLE_RUNS],
        spread=paths.seed_spread(OUT, "multistage"),  # its best point on sampling.seed_sets sets
        timings=lambda wc: [paths.timing_csv(OUT, m) for run in MULTISTAGE_TABLE_RUNS for m in run_models(run)],
        checkpoints=lambda wc: [checkpoint_file(m, POINTS[-1]) for run in MULTISTAGE_TABLE_RUNS
                                for m in run_models(run)],
    output:
        **{key: report(path, caption="../report/multistage.rst", category="Multi-stage")
           if key.endswith(("_png", "_csv")) else path for key, path in output_files(MULTISTAGE_OUTPUTS).items()},
        claims=paths.claims(OUT, "multistage_tables"),
    params:
        runs=list(MULTISTAGE_TABLE_RUNS),
        models=lambda wc: {run: run_models(run) for run in MULTISTAGE_TABLE_RUNS},
        multistage=trigger(CFG.multistage),
        experiment=paths.experiment_label(CFG),
    log:
        paths.log(OUT, "multistage_tables"),
    conda:
        ENV
    script:
        "../workflow_scripts/multistage_tables.py"


# Tables 7 and 9 forms: each model at the ablation budget, its end point on sampling.seed_sets sets.
rule multistage_ablations:
    input:
        spreads=[paths.seed_spread(OUT, run) for run in ABLATION_RUNS],
        checkpoints=lambda wc: [PLAN.checkpoints(run, POINTS[-1])[0] for run in ABLATION_RUNS],
    output:
        **{key: report(path, caption="../report/multistage_ablations.rst", category="Multi-stage")
           if key.endswith("_csv") else path for key, path in output_files(ABLATION_OUTPUTS).items()},
        claims=paths.claims(OUT, "multistage_ablations"),
    params:
        runs=ABLATION_RUNS,
        stage_runs=stage_count_runs(CFG),
        split_runs=split_runs(CFG),
        main_split=main_split(CFG),
        budget=ablation_budget(CFG),
        experiment=paths.experiment_label(CFG),
    log:
        paths.log(OUT, "multistage_ablations"),
    conda:
        ENV
    script:
        "../workflow_scripts/multistage_ablations.py"


rule multistage:
    input:
        multistage_outputs(),
