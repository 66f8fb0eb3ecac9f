# MDM Sec. 4.1: eight experts on tau_i = (125(i-1), 125 i] (scaled to T) at equal budgets
# summing to the baseline's; each expert's FID curve with the others fully trained (Fig. 3a),
# the training loss per interval (Fig. 2), and which intervals converge slowest. Then the
# budgets are reallocated by where each expert converged and the experts run again (a
# checkpoint: the new budgets are known only then). Not part of `rule all`:
# `snakemake --cores all convergence`.


checkpoint reallocate_budgets:
    input:
        series=expand(f"{OUT}/metrics/{{run}}.csv", run=EIGHT_RUNS),
    output:
        f"{OUT}/convergence/reallocation.json",
    params:
        models=eight_expert_models(CFG),
        rule=trigger(CFG.convergence),
    log:
        f"{OUT}/logs/reallocate_budgets.log",
    conda:
        ENV
    script:
        "../workflow_scripts/reallocate_budgets.py"


rule convergence_study:
    input:
        series=expand(f"{OUT}/metrics/{{run}}.csv", run=EIGHT_RUNS),
        baseline_loss=f"{OUT}/models/{BASELINE}/loss.csv",
        baseline_timing=f"{OUT}/models/{BASELINE}/timing.csv",
        expert_losses=[f"{OUT}/models/{m}/loss.csv" for m in eight_expert_models(CFG)],
        plan=rules.reallocate_budgets.output[0],
        reallocated=f"{OUT}/metrics/{REALLOCATED_RUN}.csv",
    output:
        **{f"{name}_{ext}": (report(path, caption="../report/convergence.rst", category="Convergence (8 experts)")
                             if ext in ("png", "csv") else path)
           for kind, name in (("figures", "fig2_loss_per_interval"), ("figures", "fig3a_expert_convergence"),
                              ("tables", "slowest_intervals"), ("tables", "reallocation"),
                              ("tables", "reallocation_summary"))
           for ext in ("png", "pdf", "csv", "md") if (kind == "figures") == (ext in ("png", "pdf"))
           for path in [f"{OUT}/{kind}/{name}.{ext}"]},
    params:
        models=eight_expert_models(CFG),
        rule=trigger(CFG.convergence),
        experiment=f"{CFG.data.dataset}/{CFG.experiment}",
    log:
        f"{OUT}/logs/convergence_study.log",
    conda:
        ENV
    script:
        "../workflow_scripts/convergence_study.py"


rule convergence:
    input:
        convergence_outputs(),
