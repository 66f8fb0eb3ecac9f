# The offline feature network for FID/sFID/precision/recall, then cached reference statistics.


rule train_feature_net:
    input:
        train=rules.prepare_data.output.train,
        val=rules.prepare_data.output.val,
    output:
        net=paths.feature_net(OUT),
        info=paths.feature_net_info(OUT),
    params:
        feature_net=trigger(CFG.metrics.feature_net),
    threads: 1
    log:
        paths.log(OUT, "train_feature_net"),
    benchmark:
        paths.benchmark(OUT, "train_feature_net")
    conda:
        ENV
    script:
        "../workflow_scripts/train_feature_net.py"


rule reference_statistics:
    input:
        unpack(feature_net_input),
        val=rules.prepare_data.output.val,
        train=rules.prepare_data.output.train,
    output:
        paths.reference_statistics(OUT),
    params:
        reference=CFG.metrics.reference,
    threads: 2
    resources:
        gpu=int(INCEPTION),
    log:
        paths.log(OUT, "reference_statistics"),
    benchmark:
        paths.benchmark(OUT, "reference_statistics")
    conda:
        ENV
    script:
        "../workflow_scripts/reference_statistics.py"
