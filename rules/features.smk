# The offline feature network for FID/sFID/precision/recall, then cached reference statistics.


rule train_feature_net:
    input:
        train=rules.prepare_data.output.train,
        val=rules.prepare_data.output.val,
    output:
        net=f"{OUT}/features/feature_net.pt",
        info=f"{OUT}/features/feature_net.json",
    params:
        feature_net=trigger(CFG.metrics.feature_net),
    threads: 1
    log:
        f"{OUT}/logs/train_feature_net.log",
    benchmark:
        f"{OUT}/benchmarks/train_feature_net.tsv"
    conda:
        ENV
    script:
        "../workflow_scripts/train_feature_net.py"


rule reference_statistics:
    input:
        unpack(feature_net_input),
        val=rules.prepare_data.output.val,
    output:
        f"{OUT}/features/reference_val.npz",
    threads: 2
    resources:
        gpu=int(INCEPTION),
    log:
        f"{OUT}/logs/reference_statistics.log",
    benchmark:
        f"{OUT}/benchmarks/reference_statistics.tsv"
    conda:
        ENV
    script:
        "../workflow_scripts/reference_statistics.py"
