"""Where the Inception weights come from, and the check of a configured weights file.

Torch-free, so that the config can check the file at load, before any job runs.
"""
from __future__ import annotations

from pathlib import Path

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"


WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS_FILE}"


def missing_weights_message(path: str | Path | None) -> str:
    where = f"'{path}' does not exist" if path is not None else "they could not be downloaded"
    return (
        f"Inception weights: {where}. metrics.features 'inception' needs torch-fidelity's {WEIGHTS_FILE} "
        f"(download it from {WEIGHTS_URL} on a machine with internet access), and "
        "metrics.inception_weights set to its path; null lets torch-fidelity download it itself."
    )


def check_weights_file(path: str | Path) -> Path:
    """The configured weights file as a Path; ValueError naming it and where to get it when absent."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"config key 'metrics.inception_weights': {missing_weights_message(path)}")
    return path
