"""The GPU slot allocator: no two live processes ever hold the same device."""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time

import pytest

from mdmlib.runtime import gpu_slots
from mdmlib.runtime.gpu_slots import (
    acquire_gpu_slot,
    pin_to_free_gpu,
    pin_to_free_gpus,
    try_lock,
    visible_devices,
)


def test_visible_devices_follow_cuda_visible_devices():
    assert visible_devices({"CUDA_VISIBLE_DEVICES": "2,5"}) == ["2", "5"]
    assert visible_devices({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_devices({"CUDA_VISIBLE_DEVICES": "-1"}) == []


def hold_a_slot(lock_dir, devices, hold_s, queue):
    slot = acquire_gpu_slot(devices, lock_dir, poll_s=0.005, log=lambda s: None)
    start = time.monotonic()
    time.sleep(hold_s)
    queue.put((slot.device_id, start, time.monotonic(), os.getpid()))
    slot.release()


def test_concurrent_jobs_never_share_a_slot(tmp_path):
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    devices = ["0", "1", "2"]
    # Held long enough that the 15 overlap even on a loaded machine, so every slot is used.
    procs = [ctx.Process(target=hold_a_slot, args=(tmp_path, devices, 0.3, queue)) for _ in range(15)]
    for p in procs:
        p.start()
    records = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert {r[0] for r in records} == set(devices)  # all three slots were used
    for device in devices:
        spans = sorted((start, end) for d, start, end, _ in records if d == device)
        for (_, end), (next_start, _) in zip(spans, spans[1:]):
            assert end <= next_start, f"two jobs held GPU {device} at once"


def test_a_killed_job_frees_its_slot(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from mdmlib.runtime.gpu_slots import acquire_gpu_slot; "
        f"acquire_gpu_slot(['7'], {str(tmp_path)!r}, log=lambda s: None); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert try_lock(tmp_path / "gpu_7.lock") is None  # busy while the holder lives
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    slot = acquire_gpu_slot(["7"], tmp_path, timeout_s=1.0, log=lambda s: None)
    assert slot.device_id == "7"


def test_all_slots_busy_times_out_naming_the_devices(tmp_path):
    held = acquire_gpu_slot(["0", "1"], tmp_path, log=lambda s: None), \
        acquire_gpu_slot(["0", "1"], tmp_path, log=lambda s: None)
    assert {s.device_id for s in held} == {"0", "1"}
    with pytest.raises(TimeoutError, match=r"\['0', '1'\]"):
        acquire_gpu_slot(["0", "1"], tmp_path, timeout_s=0.2, poll_s=0.05, log=lambda s: None)
    for slot in held:
        slot.release()


def test_pin_to_free_gpu_indexes_into_an_existing_allocation(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_slots, "default_lock_dir", lambda: tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    blocker = acquire_gpu_slot(["3"], tmp_path, log=lambda s: None)  # another job has GPU 3
    slot = pin_to_free_gpu(log=lambda s: None)
    assert slot.device_id == "5" and os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    slot.release()
    blocker.release()


def test_no_visible_gpu_means_the_cpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert pin_to_free_gpu(log=lambda s: None) is None


def test_a_data_parallel_job_takes_several_free_slots_and_sees_only_them(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_slots, "default_lock_dir", lambda: tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    blocker = acquire_gpu_slot(["1"], tmp_path, log=lambda s: None)
    slots = pin_to_free_gpus(2, log=lambda s: None)
    assert [s.device_id for s in slots] == ["0", "2"] and os.environ["CUDA_VISIBLE_DEVICES"] == "0,2"
    with pytest.raises(ValueError, match="needs 3 GPUs"):
        pin_to_free_gpus(3, log=lambda s: None)  # only 0 and 2 are visible to this process now
    for slot in (*slots, blocker):
        slot.release()
