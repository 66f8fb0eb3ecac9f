# Interval selection: each method writes intervals/<method>_n<n>.json. A checkpoint,
# because the experts to train are known only once the file exists; models are named
# by interval and budget, so changing the method retrains exactly what changed.


checkpoint select_intervals:
    input:
        unpack(selection_inputs),
    output:
        choice=paths.choice(OUT, "{method}", "{n}"),
        figures=report(
            directory(paths.interval_figures(OUT, "{method}", "{n}")),
            patterns=["{name}.png"],
            caption="../report/intervals.rst",
            category="Interval selection",
        ),
    params:
        settings=selection_settings,
    threads: 1
    resources:
        gpu=lambda wc: int(interval_method(wc.method).gpu),
    log:
        paths.log(OUT, "select_intervals", "{method}_n{n}"),
    benchmark:
        paths.benchmark(OUT, "select_intervals", "{method}_n{n}")
    conda:
        ENV
    script:
        "../workflow_scripts/select_intervals.py"


rule interval_study:
    input:
        choices=[choice_path(m) for m in SELECTED_METHODS],
        series=[paths.series(OUT, f"study_{m}") for m in STUDY_METHODS],
        sets=[paths.series_sets(OUT, f"study_{m}") for m in STUDY_METHODS],
        baseline=paths.series(OUT, "baseline"),
        baseline_sets=paths.series_sets(OUT, "baseline"),
    output:
        study_csv=report(paths.table(OUT, "interval_study", "csv"), caption="../report/interval_study.rst",
                         category="Tables"),
        study_md=paths.table(OUT, "interval_study", "md"),
        claims=paths.claims(OUT, "interval_study"),
        intervals_csv=report(paths.table(OUT, "intervals", "csv"), caption="../report/intervals_table.rst",
                             category="Tables"),
        intervals_md=paths.table(OUT, "intervals", "md"),
        figure=report(paths.figure(OUT, "interval_study", "png"), caption="../report/interval_study.rst",
                      category="Figures"),
        figure_pdf=paths.figure(OUT, "interval_study", "pdf"),
    params:
        methods=SELECTED_METHODS,
        study_methods=STUDY_METHODS,
        iterations=CFG.intervals.study.iterations,
        experiment=paths.experiment_label(CFG),
    log:
        paths.log(OUT, "interval_study"),
    conda:
        ENV
    script:
        "../workflow_scripts/interval_study.py"
