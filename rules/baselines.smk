# MDM paper Tables 1, 3 and 4: the baselines ADM, P2W and Soft-truncation, each with and
# without MDM, uniform against importance sampling of t, and the tau_A hybrid. Not part of
# `rule all` (it trains five more full budgets): `snakemake --cores all baselines`.


rule baseline_tables:
    input:
        spreads=[paths.seed_spread(OUT, run) for run in BASELINE_RUNS],
    output:
        **{f"{name}_{ext}": (report(path, caption="../report/baselines.rst", category="Baselines (Tables 1, 3, 4)")
                             if ext == "csv" else path)
           for name in ("table1_t_sampling", "table3_baselines", "table4_hybrid") for ext in ("csv", "md")
           for path in [paths.table(OUT, name, ext)]},
        claims=paths.claims(OUT, "baseline_tables"),
    params:
        runs=BASELINE_RUNS,
        experiment=paths.experiment_label(CFG),
        sets=CFG.sampling.seed_sets,
    log:
        paths.log(OUT, "baseline_tables"),
    conda:
        ENV
    script:
        "../workflow_scripts/baseline_tables.py"


rule baselines:
    input:
        baseline_outputs(),
