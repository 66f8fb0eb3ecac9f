# Evaluation series: sample every snapshot point of a run, score the points, then the
# paper's tables and figures.


rule sample_point:
    input:
        point_checkpoints,
    output:
        paths.samples(OUT, "{run}", "{point}"),
    params:
        sampling=SAMPLING,
        routing=lambda wc: PLAN.routing(wc.run),
    threads: CFG.sampling.threads
    resources:
        gpu=1,
    log:
        paths.log(OUT, "sample_point", "{run}_{point}"),
    benchmark:
        paths.benchmark(OUT, "sample_point", "{run}_{point}")
    conda:
        ENV
    script:
        "../workflow_scripts/sample_point.py"


# Sets 1 .. k-1 of a point of a run scored with a spread (RunPlan.seed_sets), in one job.
rule sample_extra_sets:
    input:
        point_checkpoints,
    output:
        paths.extra_samples(OUT, "{run}", "{point}"),
    params:
        sampling=SAMPLING,
        routing=lambda wc: PLAN.routing(wc.run),
        seed_sets=lambda wc: list(range(1, PLAN.seed_sets(wc.run))),
    threads: CFG.sampling.threads
    resources:
        gpu=1,
    log:
        paths.log(OUT, "sample_extra_sets", "{run}_{point}"),
    benchmark:
        paths.benchmark(OUT, "sample_extra_sets", "{run}_{point}")
    conda:
        ENV
    script:
        "../workflow_scripts/sample_point.py"


rule evaluate_series:
    input:
        unpack(feature_net_input),
        samples=series_samples,
        extra=lambda wc: PLAN.series_extra_samples(wc.run),
        reference=rules.reference_statistics.output[0],
    output:
        series=paths.series(OUT, "{run}"),
        sets=paths.series_sets(OUT, "{run}"),
    params:
        metrics=trigger(CFG.metrics),
        points=lambda wc: run_points(wc.run),
    threads: 1
    resources:
        gpu=int(INCEPTION),
    log:
        paths.log(OUT, "evaluate_series", "{run}"),
    benchmark:
        paths.benchmark(OUT, "evaluate_series", "{run}")
    conda:
        ENV
    script:
        "../workflow_scripts/evaluate_series.py"


# A run's best point on sampling.seed_sets disjoint sample sets (the tables' mean and sd).
rule seed_spread:
    input:
        unpack(feature_net_input),
        series=paths.series(OUT, "{run}"),
        checkpoints=lambda wc: [c for p in run_points(wc.run) for c in PLAN.checkpoints(wc.run, p)],
        reference=rules.reference_statistics.output[0],
    output:
        paths.seed_spread(OUT, "{run}"),
    params:
        sampling=SAMPLING,
        sets=CFG.sampling.seed_sets,
        models=lambda wc: run_models(wc.run),
        points=lambda wc: run_points(wc.run),
        routing=lambda wc: PLAN.routing(wc.run),
        scratch=lambda wc: paths.seed_sets(OUT, wc.run),
    threads: CFG.sampling.threads
    resources:
        gpu=1,
    log:
        paths.log(OUT, "seed_spread", "{run}"),
    benchmark:
        paths.benchmark(OUT, "seed_spread", "{run}")
    conda:
        ENV
    script:
        "../workflow_scripts/seed_spread.py"


# Which expert holds MDM back: each expert's interval served by the baseline, and held-out losses.
rule expert_swap:
    input:
        val=rules.prepare_data.output.val,
        experts=lambda wc: PLAN.checkpoints("mdm", POINTS[-1]),
        baseline=[paths.snapshot(OUT, BASELINE, p) for p in POINTS],
        mdm_sets=paths.series_sets(OUT, "mdm"),
        swap_sets=[paths.series_sets(OUT, run) for run in SWAP_RUNS],
    output:
        table_csv=report(paths.table(OUT, "expert_swap", "csv"), caption="../report/expert_swap.rst",
                         category="Tables"),
        table_md=paths.table(OUT, "expert_swap", "md"),
        figure_png=report(paths.figure(OUT, "expert_swap", "png"), caption="../report/expert_swap.rst",
                          category="Figures"),
        figure_pdf=paths.figure(OUT, "expert_swap", "pdf"),
        losses=paths.heldout_losses(OUT),
    params:
        point=POINTS[-1],
        experiment=paths.experiment_label(CFG),
    threads: 1
    resources:
        gpu=1,
    log:
        paths.log(OUT, "expert_swap"),
    benchmark:
        paths.benchmark(OUT, "expert_swap")
    conda:
        ENV
    script:
        "../workflow_scripts/expert_swap.py"


rule paper_tables:
    input:
        series=[paths.series(OUT, run) for run in MAIN_RUNS],
        sets=[paths.series_sets(OUT, run) for run in MAIN_RUNS],
        timings=lambda wc: [paths.timing_csv(OUT, m) for run in MAIN_RUNS for m in run_models(run)],
    output:
        quality_csv=report(paths.table(OUT, "quality", "csv"), caption="../report/quality.rst", category="Tables"),
        quality_md=paths.table(OUT, "quality", "md"),
        efficiency_csv=report(paths.table(OUT, "efficiency", "csv"), caption="../report/efficiency.rst", category="Tables"),
        efficiency_md=paths.table(OUT, "efficiency", "md"),
        figure=report(paths.figure(OUT, "fid_vs_cost", "png"), caption="../report/fid_vs_cost.rst", category="Figures"),
        figure_pdf=paths.figure(OUT, "fid_vs_cost", "pdf"),
        claims=paths.claims(OUT, "paper_tables"),
    params:
        runs=MAIN_RUNS,
        models=lambda wc: {run: run_models(run) for run in MAIN_RUNS},
        rule=trigger(CFG.convergence),
        experiment=paths.experiment_label(CFG),
    log:
        paths.log(OUT, "paper_tables"),
    conda:
        ENV
    script:
        "../workflow_scripts/paper_tables.py"


rule sample_grid:
    input:
        series=paths.series(OUT, "{run}"),
        samples=series_samples,
    output:
        png=report(paths.sample_grid(OUT, "{run}", "png"), caption="../report/samples.rst", category="Samples"),
        pdf=paths.sample_grid(OUT, "{run}", "pdf"),
    params:
        grid_size=CFG.sampling.grid_size,
    log:
        paths.log(OUT, "sample_grid", "{run}"),
    conda:
        ENV
    script:
        "../workflow_scripts/sample_grid.py"
