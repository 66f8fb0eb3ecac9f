"""Shared by the pipeline tests: the workflow copied to a temporary folder, driven through the CLI."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
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


def snakemake(workdir: Path, *args: str, check: bool = True, running: set | None = None) -> subprocess.CompletedProcess:
    """Snakemake on 2 cores in ``workdir``; the process is in ``running`` while it runs."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    with subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as popen:
        (running if running is not None else set()).add(popen)
        try:
            stdout, stderr = popen.communicate(timeout=900)
        finally:
            popen.kill()  # after a timeout (no-op once it has exited)
            (running if running is not None else set()).discard(popen)
    proc = subprocess.CompletedProcess(cmd, popen.returncode, stdout, stderr)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    return dest


def copy_smoke_run(source: Path, dest: Path) -> Path:
    """A copy of a finished run that Snakemake takes as up to date (copy2 keeps mtimes)."""
    shutil.copytree(source, dest, symlinks=True)
    return dest


def planned_jobs(plan: str) -> dict[str, int]:
    """Job counts per rule from a dry run's 'Job stats' table."""
    return {line.split()[0]: int(line.split()[1]) for line in plan.splitlines()
            if len(line.split()) == 2 and line.split()[1].isdigit()}



def run_target_on_smoke_copy(smoke_workdir: Path, dest: Path, target: str, running: set | None = None
                             ) -> tuple[Path, str]:
    """Build ``target`` in a copy of the smoke run (reusing what it made); returns the copy and
    the dry-run plan printed first, which shows what the target had to add."""
    workdir = copy_smoke_run(smoke_workdir, dest)
    plan = snakemake(workdir, target, "--configfile", "configs/smoke.yaml", "-n", running=running).stdout
    snakemake(workdir, target, "--configfile", "configs/smoke.yaml", running=running)
    return workdir, plan


# ---- the pipeline runs the workflow tests read, made in the background -------------------------
# Fixture name -> the run it returns: the smoke run, then the Snakemake target each builds on a copy
# of it, in the order they are started (and, two at a time, roughly finish).
RUN_FIXTURES = {"smoke_run": "smoke", "baselines_run": "baselines", "convergence_run": "convergence",
                "dp_run": "diffpruning", "multistage_run": "multistage", "tdc_run": "tdc"}


class PipelineRuns:
    """The smoke run, then each target on its own copy of it, two at a time, in background threads.

    The runs are the suite's critical path (measured: the tests that need none of them finish
    first and then wait), and a target's Snakemake jobs leave a core idle on chains of single
    jobs: two targets side by side keep both cores busy."""

    def __init__(self, root: Path):
        self.root = root
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pipeline-runs")
        self._runs: dict[str, Future] = {}
        self._running: set[subprocess.Popen] = set()  # the Snakemake processes of the runs under way

    def start(self, name: str) -> None:
        if name not in self._runs:
            self._runs[name] = self._executor.submit(self._smoke if name == "smoke" else self._target, name)

    def result(self, name: str):
        self.start(name)
        return self._runs[name].result()  # re-raises the run's failure in every test that reads it

    def _smoke(self, _name: str) -> tuple[Path, subprocess.CompletedProcess]:
        workdir = copy_workflow(self.root / "smoke")
        return workdir, snakemake(workdir, "--configfile", "configs/smoke.yaml", running=self._running)

    def _target(self, target: str) -> tuple[Path, str]:
        smoke_workdir, _ = self.result("smoke")  # submitted first: the other worker is building it
        return run_target_on_smoke_copy(smoke_workdir, self.root / target / "workflow", target, self._running)

    def close(self) -> None:
        """After a complete session every run has been read; after -x or Ctrl-C, stop the ones under
        way (Snakemake takes SIGINT as Ctrl-C) instead of waiting for them."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        for popen in list(self._running):
            popen.send_signal(signal.SIGINT)
        self._executor.shutdown(wait=True)


def last_run_needed(item) -> int:
    """0 for a test that reads no background run, else 1 + the start position of the last it reads."""
    order = list(RUN_FIXTURES)
    return max((order.index(name) + 1 for name in RUN_FIXTURES.keys() & set(item.fixturenames)), default=0)


def pytest_collection_modifyitems(items):
    """Stable: the tests that need none of the background runs first, then those that need the
    smoke run, then each target's as its run finishes (the others meanwhile are still building)."""
    items.sort(key=last_run_needed)


@pytest.fixture(scope="session", autouse=True)
def pipeline_runs(request, tmp_path_factory):
    """Starts, at the session's first test, the runs that the collected tests will read."""
    runs = PipelineRuns(tmp_path_factory.mktemp("pipeline_runs"))
    needed = {name for item in request.session.items for name in item.fixturenames} & RUN_FIXTURES.keys()
    if needed:
        runs.start("smoke")  # first: every target copies it
    for fixture_name, run in RUN_FIXTURES.items():
        if fixture_name in needed:
            runs.start(run)
    yield runs
    runs.close()


def _run_fixture(fixture_name: str, run: str):
    """A session fixture that waits for ``run`` (the smoke run or a target's copy) and returns it."""
    def read_run(pipeline_runs):
        return pipeline_runs.result(run)
    return pytest.fixture(scope="session", name=fixture_name)(read_run)


# smoke_run, baselines_run, convergence_run, dp_run, multistage_run, tdc_run
for _fixture_name, _run in RUN_FIXTURES.items():
    globals()[_fixture_name] = _run_fixture(_fixture_name, _run)
