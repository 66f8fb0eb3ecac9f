"""One self-describing checkpoint file: weights, EMA, optimizer, step, RNG, config, logs.

Written to a temporary name and renamed, so a kill never leaves a half-written file;
loaded with ``weights_only=True``; anything malformed is refused with the path named.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from mdmlib.config import ModelConfig, from_dict
from mdmlib.models.unet import UNet
from mdmlib.training.job import DEFAULT_RECIPE

FORMAT = "mdmlib.diffusion_checkpoint/v1"
REQUIRED = ("format", "config", "in_channels", "resolution", "interval", "step", "ema")


class CheckpointError(ValueError):
    pass


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save({"format": FORMAT, **payload}, tmp)
    os.replace(tmp, path)


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
    ckpt.setdefault("recipe", DEFAULT_RECIPE)  # written before recipes existed: uniform t
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], weights: str = "ema") -> UNet:
    """Rebuild the architecture from the stored config and load the chosen weights."""
    model_cfg = from_dict(ModelConfig, ckpt["config"]["model"])
    model = UNet(model_cfg, ckpt["in_channels"], ckpt["resolution"])
    model.load_state_dict(ckpt[weights])
    return model.eval()


