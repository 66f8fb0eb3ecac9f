"""A workflow script's log: stdout and stderr to the job's log file, opened by one first line (torch-free)."""
from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from mdmlib.runtime.allocator import allocator_settings


def script_name(argv0: str | None = None) -> str:
    """The workflow script's own file name. Snakemake runs a copy named
    ``.snakemake/scripts/tmp<random>.<script>.py``; this is ``<script>.py``."""
    name = os.path.basename(argv0 if argv0 is not None else sys.argv[0]) or "python"
    prefix, dot, rest = name.partition(".")
    return rest if dot and prefix.startswith("tmp") and rest.endswith(".py") else name


def job_name(path: str | os.PathLike[str]) -> str:
    """The job a log belongs to: logs/<rule>.log -> <rule>, logs/<rule>/<name>.log -> <rule>/<name>."""
    path = Path(path)
    return path.stem if path.parent.name in ("logs", "") else f"{path.parent.name}/{path.stem}"


def log_to(path: str | os.PathLike[str], append: bool = False):
    """Send stdout and stderr to ``path`` (line-buffered; ``append`` keeps earlier attempts'
    lines, e.g. a resumed training job's) and print the first line: the script, the job, the
    wall-clock start and the malloc settings it inherited (``mdmlib.runtime.allocator``).
    Returns the open log file."""
    log = open(path, "a" if append else "w", buffering=1)
    sys.stdout = sys.stderr = log
    start = time.strftime("%Y-%m-%d %H:%M:%S %z")
    malloc = allocator_settings()
    print(f"== {script_name()} ({job_name(path)}) started {start} on {socket.gethostname()}, pid {os.getpid()}"
          + (f"; {malloc}" if malloc else ""))
    return log
