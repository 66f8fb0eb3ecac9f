"""Image value ranges: uint8 NCHW <-> the model's float range [-1, 1]."""
from __future__ import annotations

import numpy as np
import torch


def to_model_range(images_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 NCHW -> float32 in [-1, 1]."""
    if str(images_uint8.dtype) not in ("uint8", "torch.uint8"):
        raise TypeError(f"to_model_range expects uint8 images, got {images_uint8.dtype}")
    if isinstance(images_uint8, np.ndarray):
        # astype copies, so read-only arrays (memory-mapped, np.load) convert without a warning
        return torch.from_numpy(images_uint8.astype(np.float32)) / 127.5 - 1
    return images_uint8.to(torch.float32) / 127.5 - 1


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """The ADM evaluator's conversion: truncation, not rounding, so results match its numbers.

    In float32 ``to_uint8(to_model_range(u))`` gives back ``u`` or ``u - 1`` (never more).
    """
    return ((x + 1) * 127.5).clamp(0, 255).to(torch.uint8)
