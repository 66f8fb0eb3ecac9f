rule prepare_data:
    output:
        train=f"{OUT}/data/train.npz",
        val=f"{OUT}/data/val.npz",
        provenance=f"{OUT}/data/provenance.json",
    params:
        data=trigger(CFG.data),
    log:
        f"{OUT}/logs/prepare_data.log",
    benchmark:
        f"{OUT}/benchmarks/prepare_data.tsv"
    conda:
        ENV
    script:
        "../workflow_scripts/prepare_data.py"
