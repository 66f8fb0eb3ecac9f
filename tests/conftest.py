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


# Under xdist (`make test` runs two workers, one test at a time each) the tests are queued in
# this order: while one worker makes the smoke run, the other runs the slow tests that do not
# need it; then the long runs on copies of it (the first test of each copy module makes its
# copy), the quick tests, and last the checks that read finished runs.
SUBPROCESS_MODULES = ("test_pipeline", "test_benchmarks", "test_distributed", "test_paper_configs", "test_slurm")
SMOKE_COPY_MODULES = ("test_pipeline_baselines", "test_pipeline_convergence")  # session fixtures on copies
LONG_ON_A_COPY = ("switching", "changing")  # tests that rerun part of the DAG in their own copy


def uses_smoke_run(item) -> bool:
    return "smoke_run" in getattr(item, "fixturenames", ())


def queue_rank(item, first_smoke, first_of_module) -> int:
    if item is first_smoke:
        return 0  # makes the smoke run
    if not uses_smoke_run(item):
        return 1 if item.path.stem.startswith(SUBPROCESS_MODULES) else 3
    return 2 if item in first_of_module or any(word in item.name for word in LONG_ON_A_COPY) else 4


def pytest_collection_modifyitems(items):
    first_smoke = next((item for item in items if uses_smoke_run(item)), None)
    first_of_module = {}
    for item in items:
        if item.path.stem in SMOKE_COPY_MODULES:
            first_of_module.setdefault(item.path.stem, item)
    firsts = set(first_of_module.values())
    items.sort(key=lambda item: queue_rank(item, first_smoke, firsts))  # stable: file order within a rank


def made_once(tmp_path_factory, worker_id: str, name: str, make) -> tuple[Path, str]:
    """``make(folder)`` run once per test session: (folder, the text it returned). xdist workers
    share the result: the first to ask makes it under a file lock, the others wait for it, and a
    failure is reported to every test that asked."""
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent  # the session's folder, above the workers'
    folder, done = shared / name, shared / f"{name}.out"
    with FileLock(str(shared / f"{name}.lock")):
        if not done.exists():
            try:
                done.write_text("ok\n" + make(folder))
            except Exception as error:
                done.write_text(f"failed\n{error}")
                raise
    status, output = done.read_text().split("\n", 1)
    if status != "ok":
        raise AssertionError(f"{name} failed:\n{output}")
    return folder, output


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, worker_id) -> tuple[Path, str]:
    """The whole smoke DAG: (workdir, Snakemake's output). Tests read it or work on copies
    (``copy_smoke_run``), never change it."""
    def make(workdir: Path) -> str:
        workdir.mkdir()
        return snakemake(copy_workflow(workdir), "--configfile", "configs/smoke.yaml").stdout
    return made_once(tmp_path_factory, worker_id, "smoke_workflow", make)


def copy_smoke_run(source: Path, dest: Path) -> Path:
    """A copy of a finished run that Snakemake takes as up to date (copy2 keeps mtimes), without
    the locks of a Snakemake that may be reading the source at that moment."""
    shutil.copytree(source, dest, symlinks=True, ignore=lambda folder, names: ["locks"]
                    if Path(folder).name == ".snakemake" else [])
    return dest


def run_target_on_smoke_copy(smoke_run, tmp_path_factory, worker_id, target: str) -> tuple[Path, str]:
    """Build ``target`` in a copy of the smoke run (reusing what it made), once per session;
    returns the copy and the dry-run plan printed first, which shows what the target had to add."""
    def make(workdir: Path) -> str:
        copy_smoke_run(smoke_run[0], workdir)
        plan = snakemake(workdir, target, "--configfile", "configs/smoke.yaml", "-n").stdout
        snakemake(workdir, target, "--configfile", "configs/smoke.yaml")
        return plan
    return made_once(tmp_path_factory, worker_id, f"{target}_workflow", make)


def planned_jobs(plan: str) -> dict[str, int]:
    """Job counts per rule from a dry run's 'Job stats' table."""
    return {line.split()[0]: int(line.split()[1]) for line in plan.splitlines()
            if len(line.split()) == 2 and line.split()[1].isdigit()}

