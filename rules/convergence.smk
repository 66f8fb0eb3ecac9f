# MDM Sec. 4.1: eight experts on tau_i = (125(i-1), 125 i] (scaled to T) at equal budgets
# summing to the baseline's; each expert's FID curve with the others fully trained (Fig. 3a),
# the training loss per interval (Fig. 2), and which intervals converge slowest. Then the
# budgets are reallocated by where each expert converged and the experts run again (a
# checkpoint: the new budgets are known only then). Not part of `rule all`:
# `snakemake --cores all convergence`.


checkpoint reallocate_budgets:
    input:
        series=[paths.series(OUT, run) for run in EIGHT_RUNS],
        # a rule in sd reads the FID's spread from the main runs' sample sets
        spread_from=[paths.series(OUT, run) for run in MAIN_RUNS] if CFG.convergence.rule().in_sd else [],
    output:
        paths.reallocation_plan(OUT),
    params:
        models=eight_expert_models(CFG),
        rule=trigger(CFG.convergence),
    log:
        paths.log(OUT, "reallocate_budgets"),
    conda:
        ENV
    script:
        "../workflow_scripts/reallocate_budgets.py"


rule convergence_study:
    input:
        series=[paths.series(OUT, run) for run in EIGHT_RUNS],
        baseline_loss=paths.loss_csv(OUT, BASELINE),
        baseline_timing=paths.timing_csv(OUT, BASELINE),
        expert_losses=[paths.loss_csv(OUT, m) for m in eight_expert_models(CFG)],
        plan=rules.reallocate_budgets.output[0],
        reallocated=paths.series(OUT, REALLOCATED_RUN),
    output:
        **{f"{name}_{ext}": (report(path, caption="../report/convergence.rst", category="Convergence (8 experts)")
                             if ext in ("png", "csv") else path)
           for kind, name in (("figures", "fig2_loss_per_interval"), ("figures", "fig3a_expert_convergence"),
                              ("tables", "slowest_intervals"), ("tables", "reallocation"),
                              ("tables", "reallocation_summary"))
           for ext in ("png", "pdf", "csv", "md") if (kind == "figures") == (ext in ("png", "pdf"))
           for path in [(paths.figure if kind == "figures" else paths.table)(OUT, name, ext)]},
        claims=paths.claims(OUT, "convergence_study"),
    params:
        models=eight_expert_models(CFG),
        rule=trigger(CFG.convergence),
        experiment=paths.experiment_label(CFG),
    log:
        paths.log(OUT, "convergence_study"),
    conda:
        ENV
    script:
        "../workflow_scripts/convergence_study.py"


rule convergence:
    input:
        convergence_outputs(),
