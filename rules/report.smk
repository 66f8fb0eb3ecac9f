# The claims table (every claim of the papers that a target tests, ours beside the paper's) and
# one self-contained HTML page of the run (`make report`). A target other than `make run`
# enters both once it has run: its files are found on disk when the DAG is built, and the
# rules then keep them up to date like any input (claim_files, report_sections: rules/common.smk).
ruleorder: claims_table > claims_table_update


rule claims_table:
    input:
        claim_files,
    output:
        csv=report(paths.table(OUT, "claims", "csv"), caption="../report/claims.rst", category="Claims"),
        md=paths.table(OUT, "claims", "md"),
    params:
        experiment=paths.experiment_label(CFG),
    log:
        paths.log(OUT, "claims_table"),
    conda:
        ENV
    script:
        "../workflow_scripts/claims_table.py"


# What `make <target>` calls after its target: the same table from the claims files that exist
# only, so a target run on a fresh clone does not pull `make run`'s jobs in for its claims. The
# rule `all` and a direct `snakemake claims_table` build through claims_table (ruleorder above).
use rule claims_table as claims_table_update with:
    input:
        lambda wc: claim_files(existing_only=True),
    log:
        paths.log(OUT, "claims_table_update"),


rule report_page:
    input:
        claims=rules.claims_table.output.md,
        files=lambda wc: [p for files in report_sections().values() for p in files],
    output:
        paths.report_page(OUT),
    params:
        sections=report_sections,
        experiment=paths.experiment_label(CFG),
    log:
        paths.log(OUT, "report_page"),
    conda:
        ENV
    script:
        "../workflow_scripts/report_page.py"
