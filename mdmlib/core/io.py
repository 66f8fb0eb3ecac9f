"""The one atomic write: every file the pipeline makes appears whole or not at all.

The content goes to a temporary file in the same folder, which is then renamed over the
target, so a killed job never leaves a half-written checkpoint, split, sample set or
table behind for a later job to read.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable

import numpy as np


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Write through ``write(binary_file)`` to a temporary name beside ``path``, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def atomic_savez(path: str | Path, **arrays: np.ndarray) -> Path:
    """``np.savez`` exactly at ``path`` (through an open file, so no ".npz" is appended)."""
    return atomic_write(path, lambda f: np.savez(f, **arrays))
