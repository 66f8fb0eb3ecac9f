"""The device a job runs on: CUDA when present (its own GPU slot), else the CPU at the rule's threads."""
from __future__ import annotations

import torch

from mdmlib.runtime.gpu_slots import pin_to_free_gpus

_PINNED = []  # the slot lives as long as the process


def job_device(threads: int, gpu: bool = False, gpus: int = 1) -> torch.device:
    """CUDA when present, else the CPU limited to the rule's threads (no oversubscription).

    ``gpu=True`` (rules with ``resources: gpu=N``) first takes ``gpus`` free GPU slots, so
    jobs run side by side with ``--resources gpu=N`` each get their own devices.
    """
    if gpu and not _PINNED:
        _PINNED.extend(pin_to_free_gpus(gpus))
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
