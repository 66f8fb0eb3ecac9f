# Interval selection: each method writes intervals/<method>_n<n>.json. A checkpoint,
# because the experts to train are known only once the file exists; models are named
# by interval and budget, so changing the method retrains exactly what changed.


checkpoint select_intervals:
    input:
        unpack(selection_inputs),
    output:
        choice=f"{OUT}/intervals/{{method}}_n{{n}}.json",
        figures=report(
            directory(f"{OUT}/figures/intervals/{{method}}_n{{n}}"),
            patterns=["{name}.png"],
            caption="../report/intervals.rst",
            category="Interval selection",
        ),
    params:
        settings=selection_settings,
    threads: 1
    resources:
        gpu=lambda wc: int(wc.method in ("attention", "gradient")),
    log:
        f"{OUT}/logs/select_intervals/{{method}}_n{{n}}.log",
    benchmark:
        f"{OUT}/benchmarks/select_intervals/{{method}}_n{{n}}.tsv"
    conda:
        ENV
    script:
        "../workflow_scripts/select_intervals.py"


rule interval_study:
    input:
        choices=[choice_path(m) for m in SELECTED_METHODS],
        series=[f"{OUT}/metrics/study_{m}.csv" for m in STUDY_METHODS],
        baseline=f"{OUT}/metrics/baseline.csv",
    output:
        study_csv=report(f"{OUT}/tables/interval_study.csv", caption="../report/interval_study.rst",
                         category="Tables"),
        study_md=f"{OUT}/tables/interval_study.md",
        intervals_csv=report(f"{OUT}/tables/intervals.csv", caption="../report/intervals_table.rst",
                             category="Tables"),
        intervals_md=f"{OUT}/tables/intervals.md",
        figure=report(f"{OUT}/figures/interval_study.png", caption="../report/interval_study.rst",
                      category="Figures"),
        figure_pdf=f"{OUT}/figures/interval_study.pdf",
    params:
        methods=SELECTED_METHODS,
        study_methods=STUDY_METHODS,
        iterations=CFG.intervals.study.iterations,
        experiment=f"{CFG.data.dataset}/{CFG.experiment}",
    log:
        f"{OUT}/logs/interval_study.log",
    conda:
        ENV
    script:
        "../workflow_scripts/interval_study.py"
