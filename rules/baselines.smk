# MDM paper Tables 1, 3 and 4: the baselines ADM, P2W and Soft-truncation, each with and
# without MDM, uniform against importance sampling of t, and the tau_A hybrid. Not part of
# `rule all` (it trains five more full budgets): `snakemake --cores all baselines`.


rule seed_spread:
    input:
        unpack(feature_net_input),
        series=f"{OUT}/metrics/{{run}}.csv",
        checkpoints=lambda wc: [f"{OUT}/models/{m}/point_{p}.pt" for p in POINTS for m in run_models(wc.run)],
        reference=rules.reference_statistics.output[0],
    output:
        f"{OUT}/metrics/{{run}}_seeds.csv",
    params:
        sampling=trigger(CFG.sampling),
        sets=CFG.baselines.sampling_seeds,
        models=lambda wc: run_models(wc.run),
        routing=lambda wc: run_routing(wc.run, CFG),
        scratch=lambda wc: f"{OUT}/samples/{wc.run}/seed_sets",
    threads: CFG.sampling.threads
    resources:
        gpu=1,
    log:
        f"{OUT}/logs/seed_spread/{{run}}.log",
    benchmark:
        f"{OUT}/benchmarks/seed_spread/{{run}}.tsv"
    conda:
        ENV
    script:
        "../workflow_scripts/seed_spread.py"


rule baseline_tables:
    input:
        spreads=expand(f"{OUT}/metrics/{{run}}_seeds.csv", run=BASELINE_RUNS),
    output:
        **{f"{name}_{ext}": (report(path, caption="../report/baselines.rst", category="Baselines (Tables 1, 3, 4)")
                             if ext == "csv" else path)
           for name in ("table1_t_sampling", "table3_baselines", "table4_hybrid") for ext in ("csv", "md")
           for path in [f"{OUT}/tables/{name}.{ext}"]},
    params:
        runs=BASELINE_RUNS,
        experiment=f"{CFG.data.dataset}/{CFG.experiment}",
        sets=CFG.baselines.sampling_seeds,
    log:
        f"{OUT}/logs/baseline_tables.log",
    conda:
        ENV
    script:
        "../workflow_scripts/baseline_tables.py"


rule baselines:
    input:
        baseline_outputs(),
