"""Seeded use of PyTorch's global generator, for the code that cannot be handed a generator."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def seeded_global_rng(seed: int) -> Iterator[None]:
    """Inside: the global CPU generator seeded with ``seed`` (module initialisation, dropout,
    torch-pruning's random importance draw from it); after: the caller's state, untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
