# The claims table (every claim of the papers that a target tests, ours beside the paper's) and
# one self-contained HTML page of the run (`make report`). A target other than `make run`
# enters both once it has run: its files are found on disk when the DAG is built, and the
# rules then keep them up to date like any input.
import os

# The rule whose claims file holds a target's claims -> that target.
CLAIM_SOURCES = {"paper_tables": "run", "interval_study": "run", "baseline_tables": "baselines",
                 "convergence_study": "convergence", "multistage_tables": "multistage",
                 "multistage_ablations": "multistage"}


def claim_files(wildcards=None):
    """`make run`'s claims always; another target's once its claims file exists."""
    return [path for source, target in CLAIM_SOURCES.items() for path in [paths.claims(OUT, source)]
            if target == "run" or os.path.exists(path)]


def shown(path):
    """Tables as Markdown, figures as PNG, and the folders of the interval analyses' figures."""
    return path.endswith((".md", ".png")) or "/figures/intervals/" in path


def report_sections(wildcards=None):
    """Heading -> tables, figures and figure folders of `make run`, then of each target that has run."""
    sections = {"make run": [p for p in final_outputs() if shown(p)]}
    for target, outputs in (("make baselines", baseline_outputs()), ("make convergence", convergence_outputs()),
                            ("make multistage", multistage_outputs())):
        if all(os.path.exists(p) for p in outputs):
            sections[target] = [p for p in outputs if shown(p)]
    return sections


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
