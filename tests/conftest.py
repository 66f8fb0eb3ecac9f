"""Shared by the pipeline tests: the workflow copied to a temporary folder, driven through the CLI."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mdmlib import paths

# Tiny models: one thread is fastest, and leaves the other core to the pipeline subprocesses.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
WORKFLOW_FILES = ["Snakefile", "config.yaml", "rules", "workflow_scripts", "configs", "schemas", "profiles",
                  "report", "envs"]
SMOKE_OUT = Path(paths.results_dir("digits", "smoke"))  # configs/smoke.yaml's run folder


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    return dest


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("workflow"))
    proc = snakemake(workdir, "--configfile", "configs/smoke.yaml")
    return workdir, proc


def copy_smoke_run(source: Path, dest: Path) -> Path:
    """A copy of a finished run that Snakemake takes as up to date (copy2 keeps mtimes)."""
    shutil.copytree(source, dest, symlinks=True)
    return dest


def run_target_on_smoke_copy(smoke_run, tmp_path_factory, target: str) -> tuple[Path, str]:
    """Build ``target`` in a copy of the smoke run (reusing what it made); returns the copy and
    the dry-run plan printed first, which shows what the target had to add."""
    workdir = copy_smoke_run(smoke_run[0], tmp_path_factory.mktemp(target) / "workflow")
    plan = snakemake(workdir, target, "--configfile", "configs/smoke.yaml", "-n").stdout
    snakemake(workdir, target, "--configfile", "configs/smoke.yaml")
    return workdir, plan


def planned_jobs(plan: str) -> dict[str, int]:
    """Job counts per rule from a dry run's 'Job stats' table."""
    return {line.split()[0]: int(line.split()[1]) for line in plan.splitlines()
            if len(line.split()) == 2 and line.split()[1].isdigit()}

