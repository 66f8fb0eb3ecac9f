"""The claims table of the smoke run and the report page, opened in a real (headless) browser."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import SMOKE_OUT, copy_smoke_run, copy_workflow, planned_jobs, snakemake

from mdmlib import paths
from mdmlib.report.claims import CLAIMS, NOT_RUN
from mdmlib.report.verdicts import FAILS, HOLDS, UNDECIDED

RUN_CLAIMS = {c.id for c in CLAIMS if c.target == "run"}


def test_make_run_writes_the_claims_table_with_this_runs_numbers(smoke_run):
    workdir, proc = smoke_run
    out = workdir / SMOKE_OUT
    claims = pd.read_csv(paths.table(out, "claims", "csv"), keep_default_na=False).set_index("id")
    assert list(claims.index) == [c.id for c in CLAIMS]
    measured = claims.loc[sorted(RUN_CLAIMS)]
    assert set(measured["verdict"]) <= {HOLDS, FAILS, UNDECIDED}
    assert (measured["setting"].str.contains("digits/smoke") & measured["setting"].str.contains("64 generated")).all()
    others = claims.drop(index=sorted(RUN_CLAIMS))
    assert (others["verdict"] == NOT_RUN).all() and others["reason"].str.startswith("run `make ").all()
    # "ours" is this run's quality table: MDM's and ADM's mean FID at their best points.
    quality = pd.read_csv(paths.table(out, "quality", "csv")).set_index("method")
    for run, method in (("mdm", "ADM+MDM"), ("baseline", "ADM")):
        assert f"{run} {quality.loc[method, 'FID']:.4g} (" in claims.loc["mdm_table3_fid", "ours"]
    se = quality.loc["ADM+MDM", "FID - baseline se"]
    assert claims.loc["mdm_table3_fid", "spread"] == f"paired se {se:.2g} (2 sets)"
    # The run says where its results and the report are.
    assert f"claims: {paths.table(SMOKE_OUT, 'claims', 'md')}" in proc.stdout + proc.stderr


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("no chromium on this machine: `make browser` installs Debian's package (root, apt-get)")
    return found


def headless(browser: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


def test_the_report_page_renders_every_figure_and_the_claims_table_in_a_browser(smoke_run, tmp_path):
    browser = chromium()
    workdir = copy_smoke_run(smoke_run[0], tmp_path / "workflow")
    snakemake(workdir, "report_page", "--configfile", "configs/smoke.yaml")
    page = workdir / paths.report_page(SMOKE_OUT)
    assert "src=\"data:image/png;base64," in page.read_text()  # self-contained: no file links
    dom = headless(browser, "--virtual-time-budget=15000", "--dump-dom", page.as_uri()).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    figures = int(re.search(r'data-figures="(\d+)"', body).group(1))
    loaded = int(re.search(r'data-figures-loaded="(\d+)"', body).group(1))
    # make run's figures: fid_vs_cost, interval_study, expert_swap, two sample grids, the interval analyses
    assert figures >= 5 and loaded == figures
    table = re.search(r'<table id="claims-table">(.*?)</table>', dom, re.S).group(1)
    assert table.count("<tr>") == len(CLAIMS) + 1 and "Table 3" in table
    assert dom.index('id="claims-table"') < dom.index("<figure>")  # the claims come first
    screenshot = tmp_path / "report.png"
    headless(browser, f"--screenshot={screenshot}", "--window-size=1280,2000", page.as_uri())
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000


def test_a_targets_claims_update_on_a_fresh_clone_plans_no_make_run_jobs(tmp_path):
    """`make <target>`'s second call joins the claims files that exist; the rule `all` still builds
    `make run`'s claims through claims_table."""
    workdir = copy_workflow(tmp_path)
    out = workdir / SMOKE_OUT
    target_claims = paths.claims(out, "diffpruning_tables")
    Path(target_claims).parent.mkdir(parents=True)
    Path(target_claims).write_text("id\n")  # stands in for the target's file: a dry run reads no content
    update = planned_jobs(snakemake(workdir, "claims_table_update", "--configfile", "configs/smoke.yaml", "-n").stdout)
    assert update["claims_table_update"] == 1 and update["total"] == 1  # nothing of `make run`
    full = planned_jobs(snakemake(workdir, "claims_table", "--configfile", "configs/smoke.yaml", "-n").stdout)
    assert full["claims_table"] == 1 and full["train_baseline"] >= 1 and "claims_table_update" not in full
