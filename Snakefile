# MDM: timestep-interval expert diffusion models. See README.md.
from snakemake.utils import min_version

min_version("9.21.1")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/features.smk"
include: "rules/training.smk"
include: "rules/intervals.smk"
include: "rules/baselines.smk"
include: "rules/convergence.smk"
include: "rules/multistage.smk"
include: "rules/tdc.smk"
include: "rules/diffpruning.smk"
include: "rules/evaluation.smk"
include: "rules/report.smk"


rule all:
    input:
        final_outputs(),
        rules.claims_table.output,


onsuccess:
    print(f"results: {OUT}/ (tables/, figures/, logs/); claims: {paths.table(OUT, 'claims', 'md')}; "
          f"report: `make report` writes {paths.report_page(OUT)}")
