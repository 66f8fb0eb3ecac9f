"""One GPU per job: a lock-file slot allocator.

Snakemake's ``--resources gpu=N`` only counts jobs; it never sets CUDA_VISIBLE_DEVICES,
so every job would land on GPU 0. Each GPU job takes a non-blocking ``flock`` on the
lock file of one visible device, holds it for the life of the process (the kernel
releases it when the process dies, even by kill -9), and sets CUDA_VISIBLE_DEVICES
before CUDA initialises. Lock files are named by the device id, so jobs of different
SLURM allocations on one node (each with its own CUDA_VISIBLE_DEVICES) never collide.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass
class GpuSlot:
    device_id: str  # what CUDA_VISIBLE_DEVICES is set to
    lock_path: Path
    _fd: int

    def release(self) -> None:
        os.close(self._fd)  # closing the descriptor drops the flock


def visible_devices(environ: dict | None = None) -> list[str]:
    """Device ids this process may use: CUDA_VISIBLE_DEVICES when set, else those nvidia-smi lists."""
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        return [d.strip() for d in environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False).stdout
    return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


def default_lock_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"mdmlib-gpu-slots-{os.getuid()}"


def try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for a person looking
    return fd


def acquire_gpu_slot(devices: list[str], lock_dir: Path | None = None, timeout_s: float = 3600.0,
                     poll_s: float = 0.5, log: Callable[[str], None] = print) -> GpuSlot:
    """Lock the first free device of ``devices``, waiting up to ``timeout_s`` for one."""
    if not devices:
        raise ValueError("no GPU devices to allocate")
    lock_dir = Path(lock_dir or default_lock_dir())
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline, waited = time.monotonic() + timeout_s, False
    while True:
        for device in devices:
            path = lock_dir / f"gpu_{device}.lock"
            fd = try_lock(path)
            if fd is not None:
                return GpuSlot(device, path, fd)
        if time.monotonic() > deadline:
            raise TimeoutError(f"all GPUs {devices} stayed busy for {timeout_s:.0f} s (locks in {lock_dir})")
        if not waited:
            log(f"all GPUs {devices} are busy; waiting for one to free up")
            waited = True
        time.sleep(poll_s)


def pin_to_free_gpus(count: int = 1, log: Callable[[str], None] = print) -> list[GpuSlot]:
    """Take ``count`` GPU slots and pin this process (and its children) to them; [] (CPU)
    when no GPU is visible. Data-parallel jobs take several; Snakemake's ``gpu`` resource
    (the rule asks for ``count``) keeps jobs from asking for more than there are."""
    devices = visible_devices()
    if not devices:
        return []
    if count > len(devices):
        raise ValueError(f"a job needs {count} GPUs but only {devices} are visible")
    slots: list[GpuSlot] = []
    for _ in range(count):
        free = [d for d in devices if d not in {s.device_id for s in slots}]
        slots.append(acquire_gpu_slot(free, log=log))
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(s.device_id for s in slots)
    log(f"pinned to GPU {os.environ['CUDA_VISIBLE_DEVICES']} (locks in {slots[0].lock_path.parent})")
    return slots


def pin_to_free_gpu(log: Callable[[str], None] = print) -> GpuSlot | None:
    """Take a GPU slot and pin this process to it; None (CPU) when no GPU is visible."""
    slots = pin_to_free_gpus(1, log)
    return slots[0] if slots else None
