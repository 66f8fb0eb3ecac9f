# The baseline and each expert are independent jobs: they run side by side when
# cores or GPUs allow. Running state lives in state/<model>/ (not an output), so a
# killed or requeued job resumes instead of starting over.


rule train_model:
    wildcard_constraints:
        model=r"expert_\d+",
    input:
        train=rules.prepare_data.output.train,
    output:
        snapshots=snapshot_outputs(),
        loss=f"{OUT}/models/{{model}}/loss.csv",
        timing=f"{OUT}/models/{{model}}/timing.csv",
    params:
        job=lambda wc: JOBS[wc.model],
        training=CFG.training,
        model=CFG.model,
        state_dir=lambda wc: f"{OUT}/state/{wc.model}",
    threads: CFG.training.threads
    resources:
        gpu=1,
    log:
        f"{OUT}/logs/train_model/{{model}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_model/{{model}}.tsv"
    conda:
        ENV
    script:
        "../workflow_scripts/train_model.py"


# The baseline is the longest job: start it first so it overlaps the experts.
use rule train_model as train_baseline with:
    wildcard_constraints:
        model="baseline",
    priority: 10
