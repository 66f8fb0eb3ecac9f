"""An ADM-style U-Net (Dhariwal & Nichol 2021); ``mdmlib.models.registry`` builds it as ``unet``.

Residual blocks with scale-shift timestep conditioning, multi-head self-attention at
the listed resolutions, and a switch that records attention softmax weights for the
MDM attention-concentration analysis without changing any output.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def norm_groups(channels: int) -> int:
    # ADM uses 32 groups; small widths keep at least 4 channels per group.
    return math.gcd(32, max(1, channels // 4))


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(norm_groups(channels), channels)


def hidden_norm(nominal: int, hidden: int) -> nn.GroupNorm:
    """The norm of a block's hidden width: the group size of its nominal width, so a block pruned
    by whole norm groups normalises each kept group exactly as before."""
    size = nominal // norm_groups(nominal)
    if hidden < size or hidden % size:
        raise ValueError(f"hidden width {hidden}: need a positive multiple of {size} (the norm group size of "
                         f"width {nominal})")
    return nn.GroupNorm(hidden // size, hidden)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of timestep indices (ADM's ``timestep_embedding``)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice; the timestep embedding scales and shifts the second norm.
    ``hidden``: the width between the two convolutions (default ``out_ch``; smaller when pruned)."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, hidden: int | None = None):
        super().__init__()
        hidden = out_ch if hidden is None else hidden
        self.in_channels, self.out_channels, self.hidden_channels = in_ch, out_ch, hidden
        self.in_layers = nn.Sequential(group_norm(in_ch), nn.SiLU(), nn.Conv2d(in_ch, hidden, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * hidden))
        self.out_norm = hidden_norm(out_ch, hidden)
        self.out_layers = nn.Sequential(nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(hidden, out_ch, 3, padding=1))
        nn.init.zeros_(self.out_layers[-1].weight)  # each block starts as the identity (ADM's zero_module)
        nn.init.zeros_(self.out_layers[-1].bias)
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        scale, shift = self.emb_layers(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.out_norm(h) * (1 + scale) + shift
        return self.skip(x) + self.out_layers(h)


class AttentionBlock(nn.Module):
    """Multi-head self-attention over spatial positions; ``label`` is 'r-o' as in MDM Fig. 3(b).
    ``heads``: default ``channels // channels_per_head``; fewer when pruned (each keeps its width)."""

    def __init__(self, channels: int, channels_per_head: int, label: str, heads: int | None = None):
        super().__init__()
        nominal = channels // channels_per_head
        self.num_heads = nominal if heads is None else heads
        if not 1 <= self.num_heads <= nominal:
            raise ValueError(f"attention {label}: {self.num_heads} heads, need 1 to {nominal}")
        self.channels, self.channels_per_head, self.label = channels, channels_per_head, label
        self.head_channels = channels // nominal
        inner = self.num_heads * self.head_channels
        self.norm = group_norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * inner, 1)  # per head: its q, k, v rows side by side
        self.proj = nn.Conv1d(inner, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.recorded: list[torch.Tensor] | None = None  # set to a list to record softmax weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x).reshape(b, c, h * w))
        d = self.head_channels
        q, k, v = qkv.reshape(b * self.num_heads, 3 * d, h * w).chunk(3, dim=1)
        scale = d ** -0.5
        logits = torch.einsum("bcq,bck->bqk", q * scale, k)
        weights = logits.softmax(dim=-1)
        if self.recorded is not None:
            self.recorded.append(weights.detach().reshape(b, self.num_heads, h * w, h * w).cpu())
        out = torch.einsum("bqk,bck->bcq", weights, v).reshape(b, self.num_heads * d, h * w)
        return x + self.proj(out).reshape(b, c, h, w)


class AttentionLayers:
    """Makes the attention layer of each position: an AttentionBlock at the listed resolutions
    (labelled 'r-o', the o-th at resolution r in forward order), the identity elsewhere."""

    def __init__(self, resolutions: Sequence[int], channels_per_head: int, counts: dict[int, int] | None = None):
        self.resolutions, self.channels_per_head = tuple(resolutions), channels_per_head
        self.counts = dict(counts or {})

    def __call__(self, channels: int, res: int) -> nn.Module:
        if res not in self.resolutions:
            return nn.Identity()
        self.counts[res] = self.counts.get(res, 0) + 1
        return AttentionBlock(channels, self.channels_per_head, f"{res}-{self.counts[res]}")


def down_path(ch: int, base_channels: int, channel_mult: Sequence[int], num_res_blocks: int, emb_dim: int,
              dropout: float, attention: AttentionLayers, res: int) -> tuple[nn.ModuleList, list[int], int, int]:
    """The encoder's levels: (layers, skip widths, output width, output resolution)."""
    down, skips = nn.ModuleList(), [ch]
    for level, mult in enumerate(channel_mult):
        for _ in range(num_res_blocks):
            block = ResBlock(ch, base_channels * mult, emb_dim, dropout)
            ch = base_channels * mult
            down.append(nn.ModuleList([block, attention(ch, res)]))
            skips.append(ch)
        if level < len(channel_mult) - 1:
            down.append(nn.ModuleList([nn.Conv2d(ch, ch, 3, stride=2, padding=1)]))
            skips.append(ch)
            res //= 2
    return down, skips, ch, res


def middle_block(ch: int, emb_dim: int, dropout: float, attention: AttentionLayers, res: int) -> nn.ModuleList:
    return nn.ModuleList([ResBlock(ch, ch, emb_dim, dropout), attention(ch, res), ResBlock(ch, ch, emb_dim, dropout)])


def up_path(ch: int, skips: list[int], base_channels: int, channel_mult: Sequence[int], num_res_blocks: int,
            emb_dim: int, dropout: float, attention: AttentionLayers, res: int) -> tuple[nn.ModuleList, int]:
    """The decoder's levels, each block fed the matching encoder skip: (layers, output width)."""
    up, skips = nn.ModuleList(), list(skips)
    for level, mult in reversed(list(enumerate(channel_mult))):
        for i in range(num_res_blocks + 1):
            block = ResBlock(ch + skips.pop(), base_channels * mult, emb_dim, dropout)
            ch = base_channels * mult
            layers = [block, attention(ch, res)]
            if level > 0 and i == num_res_blocks:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
                layers.append(nn.Conv2d(ch, ch, 3, padding=1))
                res *= 2
            up.append(nn.ModuleList(layers))
    return up, ch


class SkipConcat(nn.Module):
    """A dropped decoder layer: of its input cat(h, skip), the first ``channels`` (h itself)."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :self.channels]


def output_head(ch: int, out_channels: int) -> nn.Sequential:
    out = nn.Sequential(group_norm(ch), nn.SiLU(), nn.Conv2d(ch, out_channels, 3, padding=1))
    nn.init.zeros_(out[-1].weight)
    nn.init.zeros_(out[-1].bias)
    return out


def run_layers(layers: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
    return h


def encode(model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """The encoder of a U-Net (time embedding, input conv, down path, middle block): (h, skips, emb)."""
    emb = model.time_embed(timestep_embedding(t, model.base_channels))
    h = model.input_conv(x)
    hs = [h]
    for layers in model.down:
        h = run_layers(layers, h, emb)
        hs.append(h)
    return run_layers(model.middle, h, emb), hs, emb


def decode(up: nn.ModuleList, out: nn.Module, h: torch.Tensor, hs: list[torch.Tensor], emb: torch.Tensor) -> torch.Tensor:
    hs = list(hs)
    for layers in up:
        h = run_layers(layers, torch.cat([h, hs.pop()], dim=1), emb)
    return out(h)


def prunable_layers(model: nn.Module) -> list[tuple[nn.ModuleList, int]]:
    """(container, index) of every ResBlock and AttentionBlock of a U-Net in construction order
    (down path, middle, up path): the order of ``block_widths`` and ``attention_heads`` (dropped
    depth layers are not listed; ``UNet``'s widths index its layers before they are dropped)."""
    return [(group, i) for group in (*model.down, model.middle, *model.up) for i, layer in enumerate(group)
            if isinstance(layer, (ResBlock, AttentionBlock))]


def layer_widths(model: nn.Module) -> dict[str, list[int]]:
    """The per-layer widths a spec records: each ResBlock's hidden width, each attention's heads."""
    layers = [group[i] for group, i in prunable_layers(model)]
    return {"block_widths": [m.hidden_channels for m in layers if isinstance(m, ResBlock)],
            "attention_heads": [m.num_heads for m in layers if isinstance(m, AttentionBlock)]}


def set_layer_widths(model: nn.Module, block_widths: Sequence[int] | None, attention_heads: Sequence[int] | None,
                     dropout: float) -> None:
    """Rebuilds the listed layers at the given widths (freshly initialised): a pruned U-Net's shape."""
    layers = prunable_layers(model)
    blocks = [(g, i) for g, i in layers if isinstance(g[i], ResBlock)]
    attentions = [(g, i) for g, i in layers if isinstance(g[i], AttentionBlock)]
    for name, values, places in (("block_widths", block_widths, blocks), ("attention_heads", attention_heads,
                                                                          attentions)):
        if values is not None and len(values) != len(places):
            raise ValueError(f"{name}: {len(values)} values for {len(places)} layers")
    for (group, i), width in zip(blocks, block_widths or []):
        old = group[i]
        if width != old.hidden_channels:
            group[i] = ResBlock(old.in_channels, old.out_channels, old.emb_layers[1].in_features, dropout, width)
    for (group, i), heads in zip(attentions, attention_heads or []):
        old = group[i]
        if heads != old.num_heads:
            group[i] = AttentionBlock(old.channels, old.channels_per_head, old.label, heads)


@dataclass(frozen=True)
class DepthLayer:
    """A layer that DiffPruning's elastic depth may drop (Sec. 3.4, Fig. 4): ``model.down[group]``
    (branch 'encoder') or ``model.up[group]`` ('decoder'), the last ResBlock-and-attention entry of
    resolution level ``level`` (0: the input resolution), whose residual stream h keeps its width
    ``channels`` through it. A decoder entry's up-sampling layers are not part of it."""

    branch: str
    level: int
    group: int
    channels: int


def depth_layers(model: nn.Module) -> list[DepthLayer]:
    """The depth layers of a U-Net in the supplement's ranking (Sec. 2.3), most important first: level
    by level from the shallowest (highest resolution) to the deepest, the decoder's layer before the
    encoder's. A level whose last layer changes h's width (encoder: ResBlock in != out channels;
    decoder: out != its input's width less the skip's) has none on that branch; nor does an encoder
    level of one layer (num_res_blocks 1: the decoder's levels have two), nor a layer already
    dropped (``UNet(dropped_layers=...)``)."""
    found: dict[tuple[int, str], DepthLayer | None] = {}
    ch, level, entries = model.input_conv.out_channels, 0, 0  # ch: the width of h; entries: the level's layers
    for k, layers in enumerate(model.down):
        first = layers[0]
        if isinstance(first, nn.Conv2d):  # down-sampling: the next level starts
            level, entries = level + 1, 0
        else:  # a ResBlock entry, or one dropped already (the identity)
            entries += 1  # a stage of one layer keeps it: the identity would leave the level empty
            keeps = isinstance(first, ResBlock) and first.out_channels == ch and entries > 1
            found[level, "encoder"] = DepthLayer("encoder", level, k, ch) if keeps else None
        ch = getattr(first, "out_channels", ch)
    for k, layers in enumerate(model.up):  # fed cat(h, skip): the layer keeps h's width if it outputs ch
        first = layers[0]
        keeps = isinstance(first, ResBlock) and first.out_channels == ch
        found[level, "decoder"] = DepthLayer("decoder", level, k, ch) if keeps else None
        ch = getattr(first, "out_channels", ch)
        level -= any(isinstance(m, nn.Upsample) for m in layers)
    order = [(lv, branch) for lv in range(max(lv for lv, _ in found) + 1) for branch in ("decoder", "encoder")]
    return [found[key] for key in order if found.get(key) is not None]


def depth_entry(model: nn.Module, layer: DepthLayer) -> nn.ModuleList:
    """The down / up entry that holds a depth layer (its ResBlock and attention come first)."""
    return (model.down if layer.branch == "encoder" else model.up)[layer.group]


def drop_depth_layers(model: nn.Module, dropped: Sequence[int]) -> None:
    """Removes the listed depth layers (``depth_layers`` indices): an encoder layer becomes the
    identity, a decoder layer ``SkipConcat`` (its h, the skip ignored); its attention the identity.
    A decoder entry's up-sampling stays."""
    layers = depth_layers(model)
    if len(set(dropped)) != len(dropped) or any(not 0 <= j < len(layers) for j in dropped):
        raise ValueError(f"dropped_layers {list(dropped)}: need distinct indices in 0..{len(layers) - 1}")
    for j in dropped:
        layer = layers[j]
        entry = depth_entry(model, layer)
        entry[0] = nn.Identity() if layer.branch == "encoder" else SkipConcat(layer.channels)
        entry[1] = nn.Identity()


class UNet(nn.Module):
    """``block_widths`` / ``attention_heads`` (``prunable_layers`` order of the U-Net before any
    depth layer is dropped; None: the full widths) and ``dropped_layers`` (``depth_layers``
    indices, applied after the widths) give a structurally pruned U-Net its shape, so its spec
    alone rebuilds it. Dropped layers hold no ResBlock or attention: ``prunable_layers`` and
    ``depth_layers`` no longer list them."""

    def __init__(self, in_channels: int, resolution: int, base_channels: int = 32, channel_mult: Sequence[int] = (1, 2),
                 num_res_blocks: int = 1, attention_resolutions: Sequence[int] = (4,), channels_per_head: int = 16,
                 dropout: float = 0.1, block_widths: Sequence[int] | None = None,
                 attention_heads: Sequence[int] | None = None, dropped_layers: Sequence[int] | None = None):
        super().__init__()
        self.in_channels, self.resolution, self.base_channels = in_channels, resolution, base_channels
        ch, emb_dim = base_channels, 4 * base_channels
        attention = AttentionLayers(attention_resolutions, channels_per_head)
        self.time_embed = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.input_conv = nn.Conv2d(in_channels, ch, 3, padding=1)
        self.down, self.up = nn.ModuleList(), nn.ModuleList()  # registered first: the state-dict order of before
        self.down, skips, ch, res = down_path(ch, base_channels, channel_mult, num_res_blocks, emb_dim, dropout,
                                              attention, resolution)
        self.middle = middle_block(ch, emb_dim, dropout, attention, res)
        self.up, ch = up_path(ch, skips, base_channels, channel_mult, num_res_blocks, emb_dim, dropout, attention, res)
        self.out = output_head(ch, in_channels)
        if block_widths is not None or attention_heads is not None:
            set_layer_widths(self, block_widths, attention_heads, dropout)
        if dropped_layers:
            drop_depth_layers(self, dropped_layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h, hs, emb = encode(self, x, t)
        return decode(self.up, self.out, h, hs, emb)
