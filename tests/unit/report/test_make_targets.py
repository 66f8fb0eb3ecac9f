"""Each `make <target>` leaves the claims table up to date with the target's own claims."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import REPO

TARGETS = {"baselines": "baselines", "convergence": "convergence", "multistage": "multistage", "tdc": "tdc",
           "tdc-ablations": "tdc_ablations", "diffpruning": "diffpruning"}


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
@pytest.mark.parametrize("make_target", TARGETS)
def test_a_target_then_rebuilds_the_claims_table(make_target):
    plan = subprocess.run(["make", "-n", make_target, "CORES=2"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.splitlines()
    target_call = plan.index(f"snakemake {TARGETS[make_target]} --cores 2")
    assert plan.index("snakemake claims_table_update --cores 2") > target_call  # a new DAG: the target's files exist
