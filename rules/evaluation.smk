# Evaluation series: sample every snapshot point of a run, score the points, then the
# paper's tables and figures.


rule sample_point:
    input:
        point_checkpoints,
    output:
        f"{OUT}/samples/{{run}}/point_{{point}}.npz",
    params:
        sampling=trigger(CFG.sampling),
        routing=lambda wc: run_routing(wc.run, CFG),
    threads: CFG.sampling.threads
    resources:
        gpu=1,
    log:
        f"{OUT}/logs/sample_point/{{run}}_{{point}}.log",
    benchmark:
        f"{OUT}/benchmarks/sample_point/{{run}}_{{point}}.tsv"
    conda:
        ENV
    script:
        "../workflow_scripts/sample_point.py"


rule evaluate_series:
    input:
        unpack(feature_net_input),
        samples=series_samples,
        reference=rules.reference_statistics.output[0],
    output:
        f"{OUT}/metrics/{{run}}.csv",
    params:
        metrics=trigger(CFG.metrics),
        points=lambda wc: run_points(wc.run),
    threads: 1
    resources:
        gpu=int(INCEPTION),
    log:
        f"{OUT}/logs/evaluate_series/{{run}}.log",
    benchmark:
        f"{OUT}/benchmarks/evaluate_series/{{run}}.tsv"
    conda:
        ENV
    script:
        "../workflow_scripts/evaluate_series.py"


rule paper_tables:
    input:
        series=expand(f"{OUT}/metrics/{{run}}.csv", run=MAIN_RUNS),
        timings=lambda wc: [f"{OUT}/models/{m}/timing.csv" for run in MAIN_RUNS for m in run_models(run)],
    output:
        quality_csv=report(f"{OUT}/tables/quality.csv", caption="../report/quality.rst", category="Tables"),
        quality_md=f"{OUT}/tables/quality.md",
        efficiency_csv=report(f"{OUT}/tables/efficiency.csv", caption="../report/efficiency.rst", category="Tables"),
        efficiency_md=f"{OUT}/tables/efficiency.md",
        figure=report(f"{OUT}/figures/fid_vs_cost.png", caption="../report/fid_vs_cost.rst", category="Figures"),
        figure_pdf=f"{OUT}/figures/fid_vs_cost.pdf",
    params:
        runs=MAIN_RUNS,
        models=lambda wc: {run: run_models(run) for run in MAIN_RUNS},
        rule=trigger(CFG.convergence),
        experiment=f"{CFG.data.dataset}/{CFG.experiment}",
    log:
        f"{OUT}/logs/paper_tables.log",
    conda:
        ENV
    script:
        "../workflow_scripts/paper_tables.py"


rule sample_grid:
    input:
        series=f"{OUT}/metrics/{{run}}.csv",
        samples=series_samples,
    output:
        png=report(f"{OUT}/figures/samples_{{run}}.png", caption="../report/samples.rst", category="Samples"),
        pdf=f"{OUT}/figures/samples_{{run}}.pdf",
    params:
        grid_size=CFG.sampling.grid_size,
    log:
        f"{OUT}/logs/sample_grid/{{run}}.log",
    conda:
        ENV
    script:
        "../workflow_scripts/sample_grid.py"
