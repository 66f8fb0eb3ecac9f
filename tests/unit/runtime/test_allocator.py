"""The malloc settings the jobs inherit: set where unset, a user's own value kept, named in the job's log."""
from __future__ import annotations

import subprocess
import sys

from mdmlib.runtime.allocator import MALLOC_ENV, allocator_settings, tune_allocator


def test_tune_allocator_sets_the_unset_keys_and_keeps_the_users_values():
    environ = {"MALLOC_TRIM_THRESHOLD_": "0", "PATH": "/bin"}
    in_force = tune_allocator(environ)
    assert in_force == {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "0"}
    assert environ["PATH"] == "/bin" and environ["MALLOC_MMAP_THRESHOLD_"] == "33554432"
    assert int(MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]) == 32 * 2**20  # glibc's ceiling on 64-bit


def test_allocator_settings_name_what_is_set():
    assert allocator_settings({}) == ""
    assert allocator_settings({"MALLOC_MMAP_THRESHOLD_": "1"}) == "MALLOC_MMAP_THRESHOLD_=1"


def test_a_process_started_with_the_settings_names_them_in_its_log(tmp_path):
    log = tmp_path / "logs" / "job.log"
    log.parent.mkdir()
    script = f"from mdmlib.runtime.logs import log_to\nlog_to({str(log)!r})\n"
    environ = tune_allocator({})
    subprocess.run([sys.executable, "-c", script], env={**environ, "PYTHONPATH": ":".join(sys.path)}, check=True)
    first = log.read_text().splitlines()[0]
    assert first.endswith("; MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824")
