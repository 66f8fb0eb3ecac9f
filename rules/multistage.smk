# The multi-stage paper's comparisons: the unified model (the baseline), separate U-Nets per stage
# (MDM's experts on the same stages) and the multi-decoder U-Net (shared encoder, a decoder per
# stage), at equal iterations and samples, on the stages of `multistage.intervals`. Not part of
# `rule all`: `snakemake --cores all multistage` (`make multistage`).


rule multistage_tables:
    input:
        series=[paths.series(OUT, run) for run in MULTISTAGE_TABLE_RUNS],
        timings=lambda wc: [paths.timing_csv(OUT, m) for run in MULTISTAGE_TABLE_RUNS for m in run_models(run)],
        checkpoints=lambda wc: [checkpoint_file(m, POINTS[-1]) for run in MULTISTAGE_TABLE_RUNS
                                for m in run_models(run)],
    output:
        **{f"{name}_{ext}": (report(path, caption="../report/multistage.rst", category="Multi-stage")
                             if ext in ("png", "csv") else path)
           for name, kind, stem in MULTISTAGE_OUTPUTS
           for ext in (("png", "pdf") if kind == "figure" else ("csv", "md"))
           for path in [(paths.figure if kind == "figure" else paths.table)(OUT, stem, ext)]},
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


rule multistage:
    input:
        multistage_outputs(),
