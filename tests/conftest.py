"""Shared by the pipeline tests: the workflow copied to a temporary folder, driven through the CLI."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from filelock import FileLock

# Tiny models: one thread is fastest, and leaves the other core to the pipeline subprocesses.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
WORKFLOW_FILES = ["Snakefile", "config.yaml", "rules", "workflow_scripts", "configs", "schemas", "profiles",
                  "report", "envs"]
SMOKE_OUT = Path("results/digits/smoke")


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def copy_workflow(dest: Path) -> Path:
    for name in WORKFLOW_FILES:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    return dest


# Under xdist (`make test` runs two workers) the tests are queued in this order, so that while
# one worker makes the smoke run the other runs the slow tests that do not need it, and the
# long smoke-copy runs start before the quick tests that fill the end.
SUBPROCESS_MODULES = ("test_pipeline", "test_benchmarks", "test_distributed", "test_paper_configs", "test_slurm")
SMOKE_COPY_MODULES = ("test_pipeline_baselines", "test_pipeline_convergence")  # module fixtures on copies


def uses_smoke_run(item) -> bool:
    return "smoke_run" in getattr(item, "fixturenames", ())


def queue_rank(item, first_smoke) -> int:
    module = item.path.stem
    if item is first_smoke:
        return 0  # makes the smoke run
    if not uses_smoke_run(item):
        return 1 if module.startswith(SUBPROCESS_MODULES) else 3
    return 2 if module in SMOKE_COPY_MODULES or "copy" in item.name or "switching" in item.name \
        or "changing" in item.name else 4


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.stem in SMOKE_COPY_MODULES:  # one worker per module: its copy is made once
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
    first_smoke = next((item for item in items if uses_smoke_run(item)), None)
    items.sort(key=lambda item: queue_rank(item, first_smoke))  # stable: file order within a rank


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, worker_id) -> tuple[Path, str]:
    """The whole smoke DAG run once per test session: (workdir, Snakemake's output). xdist
    workers share it: the first to ask runs it under a file lock, the others wait for it.
    Tests read it or work on copies (``copy_smoke_run``), never change it."""
    if worker_id == "master":
        shared = tmp_path_factory.getbasetemp()
    else:
        shared = tmp_path_factory.getbasetemp().parent
    workdir, done = shared / "smoke_workflow", shared / "smoke_workflow.out"
    with FileLock(str(shared / "smoke_workflow.lock")):
        if not done.exists():
            workdir.mkdir()
            proc = snakemake(copy_workflow(workdir), "--configfile", "configs/smoke.yaml", check=False)
            ok = proc.returncode == 0
            done.write_text(f"{'ok' if ok else 'failed'}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    status, output = done.read_text().split("\n", 1)
    if status != "ok":
        raise AssertionError(f"the smoke run failed:\n{output}")
    return workdir, output


def copy_smoke_run(source: Path, dest: Path) -> Path:
    """A copy of a finished run that Snakemake takes as up to date (copy2 keeps mtimes), without
    the locks of a Snakemake that may be reading the source at that moment."""
    shutil.copytree(source, dest, symlinks=True, ignore=lambda folder, names: ["locks"]
                    if Path(folder).name == ".snakemake" else [])
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

