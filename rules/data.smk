rule prepare_data:
    output:
        train=paths.train_split(OUT),
        val=paths.val_split(OUT),
        provenance=paths.provenance(OUT),
    params:
        data=trigger(CFG.data),
    log:
        paths.log(OUT, "prepare_data"),
    benchmark:
        paths.benchmark(OUT, "prepare_data")
    conda:
        ENV
    script:
        "../workflow_scripts/prepare_data.py"
