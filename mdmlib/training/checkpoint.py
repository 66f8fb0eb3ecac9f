"""One self-describing checkpoint file: model spec, weights, EMA, optimizer, step, RNG, config, logs.

The model spec (architecture name and full constructor arguments, ``mdmlib.models.registry``)
rebuilds the model from the file alone. Written atomically, so a kill never leaves a
half-written file; loaded with ``weights_only=True``; anything malformed is refused with
the path named.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mdmlib.core.io import atomic_write
from mdmlib.models.registry import build_model

FORMAT = "mdmlib.diffusion_checkpoint/v2"  # v2: the model spec replaced rebuilding from config.model
REQUIRED = ("format", "model_spec", "config", "name", "in_channels", "resolution", "interval", "recipe", "step",
            "ema")


class CheckpointError(ValueError):
    pass


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    atomic_write(path, lambda f: torch.save({"format": FORMAT, **payload}, f))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, ...
        raise CheckpointError(f"checkpoint {path}: unreadable ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: not an {FORMAT} file")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path}: missing fields {missing}")
    spec = ckpt["model_spec"]
    if not isinstance(spec, dict) or not isinstance(spec.get("architecture"), str) \
            or not isinstance(spec.get("arguments"), dict):
        raise CheckpointError(f"checkpoint {path}: model_spec is not {{'architecture': str, 'arguments': dict}}")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], weights: str = "ema") -> torch.nn.Module:
    """Rebuild the registered architecture from the stored spec and load the chosen weights
    ("ema" or the raw "model")."""
    try:
        model = build_model(ckpt["model_spec"])
        model.load_state_dict(ckpt[weights])
    except (ValueError, RuntimeError, KeyError) as err:
        raise CheckpointError(f"checkpoint {ckpt.get('name', '?')}: cannot rebuild its model ({err})") from err
    return model.eval()
