# Every model (the baseline, each expert) is an independent job named by what it trains,
# t<lo>-<hi>_i<iterations>: jobs run side by side when cores or GPUs allow, and runs that
# ask for the same interval and budget share one model. Running state lives in
# state/<model>/ (not an output), so a killed or requeued job resumes instead of starting over.


rule train_model:
    input:
        train=rules.prepare_data.output.train,
    output:
        snapshots=snapshot_outputs(),
        loss=paths.loss_csv(OUT, "{model}"),
        timing=paths.timing_csv(OUT, "{model}"),
    params:
        training=trigger(CFG.training),
        model=trigger(CFG.model),
        diffusion=trigger(CFG.diffusion),
        state_dir=lambda wc: paths.state_dir(OUT, wc.model),
    threads: CFG.training.threads
    resources:
        gpu=CFG.training.data_parallel,
    log:
        paths.log(OUT, "train_model", "{model}"),
    benchmark:
        paths.benchmark(OUT, "train_model", "{model}")
    conda:
        ENV
    script:
        "../workflow_scripts/train_model.py"


# Single models on (0, T] (the baseline and its early-stopped analysis copies) are the
# longest jobs or gate the interval analyses: start them first.
use rule train_model as train_baseline with:
    wildcard_constraints:
        model=rf"t0-{T}_i\d+(?:_[a-z0-9_]+)?",
    priority: 10


ruleorder: train_baseline > train_model
