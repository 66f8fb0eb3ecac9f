"""A pruning scheme (per-layer keep ratios) of a U-Net, the widths it gives, and its MACs.

What is pruned, as in Diff-Pruning's and APTP's U-Nets: each ResBlock's hidden width (the
output of its first convolution, its time projection, its second norm and the input of its
second convolution), in whole norm groups, and each attention layer's heads. The residual
stream (block outputs, skips, down/up-sampling) keeps its width, so the U-Net's skip
connections stay consistent. A scheme is data: one keep ratio per ResBlock and per attention
layer (``mdmlib.models.unet.prunable_layers`` order), so a proposer can read and write it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from mdmlib.models.macs import forward_macs
from mdmlib.models.registry import build_model
from mdmlib.models.unet import AttentionBlock, ResBlock, norm_groups, prunable_layers


@dataclass(frozen=True)
class UNetShape:
    """The prunable widths of an unpruned U-Net: hidden width and norm group size per ResBlock,
    heads per attention layer."""

    block_widths: tuple[int, ...]
    group_sizes: tuple[int, ...]
    attention_heads: tuple[int, ...]

    @property
    def block_groups(self) -> tuple[int, ...]:
        return tuple(w // s for w, s in zip(self.block_widths, self.group_sizes))


@dataclass(frozen=True)
class PruningScheme:
    """Keep ratios in (0, 1]: of each ResBlock's norm groups and of each attention layer's heads."""

    block_keep: tuple[float, ...]
    head_keep: tuple[float, ...]

    def __post_init__(self):
        for name, values in (("block_keep", self.block_keep), ("head_keep", self.head_keep)):
            bad = [v for v in values if not (isinstance(v, (int, float)) and 0 < v <= 1)]
            if bad:
                raise ValueError(f"pruning scheme {name}: ratios must lie in (0, 1], got {bad}")

    @classmethod
    def uniform(cls, shape: UNetShape, keep: float) -> "PruningScheme":
        return cls((keep,) * len(shape.block_widths), (keep,) * len(shape.attention_heads))

    def scaled(self, factor: float) -> "PruningScheme":
        """Every ratio times ``factor`` (floored at a tiny positive ratio: one group or head stays)."""
        return PruningScheme(tuple(max(1e-6, min(1.0, r * factor)) for r in self.block_keep),
                             tuple(max(1e-6, min(1.0, r * factor)) for r in self.head_keep))

    def to_dict(self) -> dict:
        return {"block_keep": list(self.block_keep), "head_keep": list(self.head_keep)}

    @classmethod
    def from_dict(cls, data: dict, shape: UNetShape) -> "PruningScheme":
        """A scheme from plain data (a proposer's reply); ValueError naming what does not fit ``shape``."""
        if not isinstance(data, dict) or set(data) != {"block_keep", "head_keep"}:
            raise ValueError(f"a scheme is {{'block_keep': [...], 'head_keep': [...]}}, got {data!r}")
        blocks, heads = data["block_keep"], data["head_keep"]
        if not isinstance(blocks, list) or len(blocks) != len(shape.block_widths):
            raise ValueError(f"block_keep: need {len(shape.block_widths)} ratios, got {blocks!r}")
        if not isinstance(heads, list) or len(heads) != len(shape.attention_heads):
            raise ValueError(f"head_keep: need {len(shape.attention_heads)} ratios, got {heads!r}")
        numbers = [v for v in (*blocks, *heads) if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numbers) != len(blocks) + len(heads):
            raise ValueError(f"a scheme's ratios must be numbers, got {data!r}")
        return cls(tuple(float(v) for v in blocks), tuple(float(v) for v in heads))


def unet_shape(model: torch.nn.Module) -> UNetShape:
    layers = [group[i] for group, i in prunable_layers(model)]
    blocks = [m for m in layers if isinstance(m, ResBlock)]
    return UNetShape(tuple(m.hidden_channels for m in blocks),
                     tuple(m.out_channels // norm_groups(m.out_channels) for m in blocks),
                     tuple(m.num_heads for m in layers if isinstance(m, AttentionBlock)))


def scheme_widths(shape: UNetShape, scheme: PruningScheme) -> dict[str, list[int]]:
    """The per-layer widths a scheme gives: whole norm groups (at least one), whole heads (at least one)."""
    if (len(scheme.block_keep), len(scheme.head_keep)) != (len(shape.block_widths), len(shape.attention_heads)):
        raise ValueError(f"scheme of {len(scheme.block_keep)} blocks / {len(scheme.head_keep)} attention layers for "
                         f"a U-Net of {len(shape.block_widths)} / {len(shape.attention_heads)}")
    groups = [max(1, round(r * g)) for r, g in zip(scheme.block_keep, shape.block_groups)]
    return {"block_widths": [g * s for g, s in zip(groups, shape.group_sizes)],
            "attention_heads": [max(1, round(r * h)) for r, h in zip(scheme.head_keep, shape.attention_heads)]}


def pruned_spec(spec: dict, widths: dict[str, list[int]]) -> dict:
    """The registry spec of ``spec``'s U-Net at ``widths`` (what a pruned checkpoint stores)."""
    if spec["architecture"] != "unet":
        raise ValueError(f"structural pruning is defined for the 'unet' architecture, not {spec['architecture']!r}")
    return {"architecture": "unet", "arguments": {**spec["arguments"], **{k: list(v) for k, v in widths.items()}}}


def spec_macs(spec: dict) -> int:
    """Forward MACs per image of a spec's model, counted on the meta device (nothing allocated)."""
    with torch.device("meta"):
        model = build_model(spec)
        args = spec["arguments"]
        x = torch.zeros(1, args["in_channels"], args["resolution"], args["resolution"])
        t = torch.zeros(1, dtype=torch.long)
    return forward_macs(model, x, t)


def macs_counter(spec: dict, shape: UNetShape) -> Callable[[PruningScheme], int]:
    """scheme -> forward MACs of ``spec`` pruned by it (memoised on the widths)."""
    cache: dict[str, int] = {}

    def count(scheme: PruningScheme) -> int:
        widths = scheme_widths(shape, scheme)
        key = repr(widths)
        if key not in cache:
            cache[key] = spec_macs(pruned_spec(spec, widths))
        return cache[key]
    return count


def smallest_scheme(shape: UNetShape) -> PruningScheme:
    """One norm group per ResBlock and one head per attention layer: the fewest MACs a scheme reaches."""
    return PruningScheme(tuple(1 / g for g in shape.block_groups), tuple(1 / h for h in shape.attention_heads))


def fit_to_limit(scheme: PruningScheme, limit_macs: float, count: Callable[[PruningScheme], int],
                 shape: UNetShape, key: str = "the MACs limit", iterations: int = 20) -> PruningScheme:
    """``scheme`` scaled by the largest factor in (0, 1] whose MACs are within ``limit_macs``:
    its proportions between layers kept, as much width as the limit allows. ValueError naming
    ``key`` when even the smallest U-Net of this shape does not meet the limit."""
    if count(scheme) <= limit_macs:
        return scheme
    floor = count(smallest_scheme(shape))
    if floor > limit_macs:
        raise ValueError(f"{key}: {limit_macs / 1e6:.4g}M MACs cannot be met: one norm group per ResBlock and one "
                         f"head per attention layer still take {floor / 1e6:.4g}M")
    lo, hi = 0.0, 1.0  # count(scaled(lo)) <= limit (at a tiny factor every layer keeps one group or head)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if count(scheme.scaled(mid)) <= limit_macs else (lo, mid)
    fitted = scheme.scaled(lo) if lo > 0 else smallest_scheme(shape)
    return fitted if count(fitted) <= limit_macs else smallest_scheme(shape)


def uniform_scheme(limit_macs: float, count: Callable[[PruningScheme], int], shape: UNetShape,
                   key: str = "the MACs limit") -> PruningScheme:
    """The same keep ratio in every layer, as large as ``limit_macs`` allows (torch-pruning's
    default, local pruning: every layer loses the same share)."""
    return fit_to_limit(PruningScheme.uniform(shape, 1.0), limit_macs, count, shape, key)


def kept_indices(scores: torch.Tensor, keep: int, group_size: int = 1) -> list[int]:
    """Indices (ascending) of the ``keep`` highest-scoring groups of ``group_size`` consecutive
    entries of ``scores``, each group scored by its mean; ties go to the earlier group."""
    groups = scores.reshape(-1, group_size).float().mean(dim=1)
    order = sorted(range(len(groups)), key=lambda g: (-float(groups[g]), g))[:keep]
    return [g * group_size + k for g in sorted(order) for k in range(group_size)]

