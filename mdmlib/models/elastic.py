"""DiffPruning's elastic U-Net: sub-networks of a U-Net chosen by gates (Sec. 3.4-3.5).

A sub-network keeps, per ResBlock, some of its hidden norm groups (width units), per attention
layer some of its heads, and per depth layer (the last layer of an encoder or decoder stage whose
residual stream keeps its width) the layer or the identity. Gates are tensors in [0, 1]: soft
gates interpolate (the routing agent's relaxation, Eq. 8, 10, 11), hard 0/1 gates give exactly
the outputs of the physically pruned network.

After ``sort_width_units`` a layer's unit k is its k-th most important (L1 norm, supplement 2.2),
so elastic width training (``ElasticUNet``) and the physical prune (``prune_subnetwork``) keep a
prefix of each layer's units; ``macs_table`` gives a sub-network's MACs from its unit counts.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from mdmlib.models.registry import build_model
from mdmlib.models.unet import (
    AttentionBlock,
    DepthLayer,
    ResBlock,
    UNet,
    depth_entry,
    depth_layers,
    prunable_layers,
    timestep_embedding,
)
from mdmlib.pruning.scheme import spec_macs

ELASTIC_MODES = ("depth", "width")
ELASTIC_ARGUMENTS = ("elastic", "drop_probability")  # ElasticUNet's own constructor arguments


@dataclass
class SubnetGates:
    """Gates of one sub-network, in ``mdmlib.models.unet.prunable_layers`` order for ``blocks``
    (one tensor of shape (norm groups,) per ResBlock) and ``heads`` (shape (heads,) per attention
    layer), and in ``depth_layers`` order for ``depth`` (a scalar tensor per depth layer).
    None anywhere: that layer is whole (gate 1)."""

    blocks: list[torch.Tensor | None]
    heads: list[torch.Tensor | None]
    depth: list[torch.Tensor | None]


@dataclass(frozen=True)
class MacsTable:
    """Forward MACs per image of a U-Net as a function of its gates (DiffPruning Eq. 12-13):

    total = fixed + sum over ResBlocks b of depth_gate(b) * (block_fixed[b] + kept_groups(b) * group_macs[b])
                  + sum over attention layers a of depth_gate(a) * (head_fixed[a] + kept_heads(a) * head_macs[a])

    where depth_gate is the gate of the depth layer holding that block (``block_depth`` /
    ``head_depth``: its index in ``depth_layers`` order, or None when the block is in no depth
    layer). Exact for hard gates: equal to ``mdmlib.pruning.scheme.spec_macs`` of the pruned spec."""

    fixed: float
    block_fixed: tuple[float, ...]
    group_macs: tuple[float, ...]
    block_groups: tuple[int, ...]
    block_depth: tuple[int | None, ...]
    head_fixed: tuple[float, ...]
    head_macs: tuple[float, ...]
    heads: tuple[int, ...]
    head_depth: tuple[int | None, ...]
    depth_layers: int


def width_layers(model: nn.Module) -> tuple[list[ResBlock], list[AttentionBlock]]:
    """The ResBlocks and attention layers in ``prunable_layers`` order (SubnetGates' order)."""
    layers = [group[i] for group, i in prunable_layers(model)]
    return [m for m in layers if isinstance(m, ResBlock)], [m for m in layers if isinstance(m, AttentionBlock)]


# ---------------------------------------------------------------- the gated forward pass

def _unit_gate(gate: Tensor, units: int, what: str) -> Tensor:
    if gate.shape[-1:] != (units,):
        raise ValueError(f"{what}: a gate of shape {tuple(gate.shape)} for {units} units")
    return gate


def gated_resblock(block: ResBlock, x: Tensor, emb: Tensor, gate: Tensor | None) -> Tensor:
    """``block(x, emb)`` with each hidden norm group multiplied by its gate after the scale-shift and
    before SiLU / conv2: a hard 0 removes the group exactly (GroupNorm is per group; SiLU(0) = 0)."""
    if gate is None:
        return block(x, emb)
    groups = block.out_norm.num_groups
    per_channel = _unit_gate(gate, groups, "ResBlock").repeat_interleave(block.hidden_channels // groups, dim=-1)
    h = block.in_layers(x)
    scale, shift = block.emb_layers(emb)[:, :, None, None].chunk(2, dim=1)
    h = (block.out_norm(h) * (1 + scale) + shift) * per_channel[..., None, None]
    return block.skip(x) + block.out_layers(h)


def gated_attention(block: AttentionBlock, x: Tensor, gate: Tensor | None) -> Tensor:
    """``block(x)`` with each head's output (its attention-weighted v, before the projection)
    multiplied by its gate: a hard 0 removes the head exactly."""
    if gate is None:
        return block(x)
    b, c, hh, ww = x.shape
    n, d = block.num_heads, block.head_channels
    qkv = block.qkv(block.norm(x).reshape(b, c, hh * ww))
    q, k, v = qkv.reshape(b * n, 3 * d, hh * ww).chunk(3, dim=1)
    weights = torch.einsum("bcq,bck->bqk", q * d ** -0.5, k).softmax(dim=-1)
    if block.recorded is not None:
        block.recorded.append(weights.detach().reshape(b, n, hh * ww, hh * ww).cpu())
    out = torch.einsum("bqk,bck->bcq", weights, v).reshape(b, n, d, hh * ww)
    out = out * _unit_gate(gate, n, f"attention {block.label}")[..., None, None]
    return x + block.proj(out.reshape(b, n * d, hh * ww)).reshape(b, c, hh, ww)


def _gated_layers(layers: Sequence[nn.Module], h: Tensor, emb: Tensor, units: dict[int, Tensor | None]) -> Tensor:
    """``run_layers`` with width gates (``units``: module id -> gate)."""
    for layer in layers:
        if isinstance(layer, ResBlock):
            h = gated_resblock(layer, h, emb, units[id(layer)])
        elif isinstance(layer, AttentionBlock):
            h = gated_attention(layer, h, units[id(layer)])
        else:
            h = layer(h)
    return h


def _host_value(gate: Tensor) -> float | None:
    """A depth gate's value when it is a plain number on the host (no sync, no gradient), else None."""
    if gate.requires_grad or gate.device.type != "cpu" or gate.numel() != 1:
        return None
    return float(gate)


def _gated_entry(layers: nn.ModuleList, inp: Tensor, h: Tensor, emb: Tensor, units: dict[int, Tensor | None],
                 u: Tensor | None) -> Tensor:
    """One down / up entry fed ``inp`` (h, or cat(h, skip) in the decoder); a depth gate u gives
    u * f(inp) + (1 - u) * h (Eq. 10, 11), f the entry's ResBlock and attention, then its up-sampling."""
    if u is None:
        return _gated_layers(layers, inp, emb, units)
    core, upsampling = list(layers)[:2], list(layers)[2:]  # plain lists: no ModuleList built per call
    known = _host_value(u)
    if known == 0.0:  # a dropped layer (Eq. 4): not computed, so its weights get no gradient
        out = h
    elif known == 1.0:
        out = _gated_layers(core, inp, emb, units)
    else:
        out = u * _gated_layers(core, inp, emb, units) + (1 - u) * h
    return _gated_layers(upsampling, out, emb, units)


def _gate_lookup(model: nn.Module, gates: SubnetGates) -> tuple[dict, dict]:
    """(module id -> width gate, (branch, group) -> depth gate), the gate counts checked."""
    blocks, attentions = width_layers(model)
    depth: list[DepthLayer] = depth_layers(model)
    for name, given, layers in (("blocks", gates.blocks, blocks), ("heads", gates.heads, attentions),
                                ("depth", gates.depth, depth)):
        if len(given) != len(layers):
            raise ValueError(f"SubnetGates.{name}: {len(given)} gates for {len(layers)} layers")
    units = {id(m): g for m, g in zip([*blocks, *attentions], [*gates.blocks, *gates.heads])}
    return units, {(layer.branch, layer.group): u for layer, u in zip(depth, gates.depth)}


def gated_forward(model: nn.Module, x: Tensor, t: Tensor, gates: SubnetGates) -> Tensor:
    """The U-Net's forward pass (``encode`` / ``decode``) with ``gates`` applied; all-None gates
    call the very layers of ``model(x, t)``, so the output is identical. Width gates of shape
    (units,) or (batch, units). A depth gate that is a host number (a CPU tensor without
    gradient) of exactly 0 or 1 skips the unneeded half of Eq. 10 / 11: the same output."""
    units, depth = _gate_lookup(model, gates)
    emb = model.time_embed(timestep_embedding(t, model.base_channels))
    h = model.input_conv(x)
    hs = [h]
    for k, layers in enumerate(model.down):
        h = _gated_entry(layers, h, h, emb, units, depth.get(("encoder", k)))
        hs.append(h)
    h = _gated_layers(model.middle, h, emb, units)
    for k, layers in enumerate(model.up):
        h = _gated_entry(layers, torch.cat([h, hs.pop()], dim=1), h, emb, units, depth.get(("decoder", k)))
    return model.out(h)


# ---------------------------------------------------------------- elastic training

def prefix_gate(units: int, keep: int, device: torch.device | None = None) -> Tensor:
    """A 0/1 gate keeping a layer's first ``keep`` units (after sorting: its most important)."""
    return (torch.arange(units, device=device) < keep).float()


def kept_gates(model: nn.Module, groups: Sequence[int], heads: Sequence[int], kept: Sequence[bool]) -> SubnetGates:
    """Hard gates of the sub-network ``prune_subnetwork`` cuts: the first ``groups`` / ``heads`` units
    of each layer, the depth layers flagged True."""
    blocks, attentions = width_layers(model)
    return SubnetGates([prefix_gate(b.out_norm.num_groups, k) for b, k in zip(blocks, groups)],
                       [prefix_gate(a.num_heads, k) for a, k in zip(attentions, heads)],
                       [torch.tensor(1.0 if k else 0.0) for k in kept])


def _prefix_gate(units: int, r: float, device: torch.device) -> Tensor:
    """Drop floor(units * r) units from the end (the least important), keeping at least one."""
    return prefix_gate(units, max(1, units - math.floor(units * r)), device)


def sampled_gates(model: nn.Module, mode: str, p: float = 0.5) -> SubnetGates:
    """One random sub-network from the global torch RNG. 'depth': each depth layer dropped with
    probability p (Eq. 4; host 0/1 gates). 'width': per ResBlock and per attention layer, r ~ U[0, 1)
    and the floor(r * units) last units dropped (supplement 2.2)."""
    blocks, attentions = width_layers(model)
    whole = SubnetGates([None] * len(blocks), [None] * len(attentions), [None] * len(depth_layers(model)))
    if mode == "depth":
        dropped = torch.rand(len(whole.depth)) < p
        return replace(whole, depth=[(~d).float() for d in dropped])
    if mode == "width":
        device = next(model.parameters()).device
        r_blocks, r_heads = torch.rand(len(blocks)), torch.rand(len(attentions))
        return replace(whole, blocks=[_prefix_gate(b.out_norm.num_groups, float(r), device)
                                      for b, r in zip(blocks, r_blocks)],
                       heads=[_prefix_gate(a.num_heads, float(r), device) for a, r in zip(attentions, r_heads)])
    raise ValueError(f"elastic mode {mode!r}: one of {ELASTIC_MODES}")


class ElasticUNet(UNet):
    """A U-Net trained with elastic depth or width (Sec. 3.4): in training mode each forward pass runs
    one sub-network drawn for the whole batch (``sampled_gates``, global torch RNG, so a resume that
    restores the RNG state stays exact); in eval mode it is the U-Net. Its parameters and state-dict
    keys are the U-Net's: a 'unet' checkpoint loads into it. ``drop_probability``: p of Eq. 4."""

    def __init__(self, in_channels: int, resolution: int, elastic: str = "depth", drop_probability: float = 0.5,
                 **unet_arguments: Any):
        if elastic not in ELASTIC_MODES:
            raise ValueError(f"elastic={elastic!r}: one of {ELASTIC_MODES}")
        if not 0 <= drop_probability <= 1:
            raise ValueError(f"drop_probability={drop_probability}: need a probability")
        super().__init__(in_channels, resolution, **unet_arguments)
        self.elastic, self.drop_probability = elastic, drop_probability

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        if not self.training:
            return super().forward(x, t)
        return gated_forward(self, x, t, sampled_gates(self, self.elastic, self.drop_probability))


# ---------------------------------------------------------------- units sorted by importance

def unit_scores(layer: ResBlock | AttentionBlock) -> Tensor:
    """L1 norm per width unit: per norm group of a ResBlock, its conv1 output weights; per head of an
    attention layer, its q, k, v rows and its output-projection columns."""
    if isinstance(layer, ResBlock):
        per_channel = layer.in_layers[-1].weight.detach().abs().flatten(1).sum(1)
        return per_channel.reshape(layer.out_norm.num_groups, -1).sum(1)
    n = layer.num_heads
    rows = layer.qkv.weight.detach().abs().reshape(n, -1).sum(1)
    columns = layer.proj.weight.detach().abs().transpose(0, 1).reshape(n, -1).sum(1)
    return rows + columns


def _unit_index(scores: Tensor, size: int) -> Tensor:
    """Channel indices of the units in descending score (ties: the earlier unit first)."""
    values = scores.tolist()
    order = sorted(range(len(values)), key=lambda u: (-values[u], u))
    return torch.tensor([u * size + k for u in order for k in range(size)])


def _permute(pairs: Sequence[tuple[Tensor, Tensor, int]]) -> None:
    for param, index, dim in pairs:
        param.copy_(param.index_select(dim, index.to(param.device)))


def _sort_groups(block: ResBlock) -> None:
    width = block.hidden_channels
    perm = _unit_index(unit_scores(block), width // block.out_norm.num_groups)
    rows = torch.cat([perm, perm + width])  # the time projection: scale rows, then shift rows
    conv1, linear, conv2, norm = block.in_layers[-1], block.emb_layers[1], block.out_layers[-1], block.out_norm
    _permute([(conv1.weight, perm, 0), (conv1.bias, perm, 0), (linear.weight, rows, 0), (linear.bias, rows, 0),
              (norm.weight, perm, 0), (norm.bias, perm, 0), (conv2.weight, perm, 1)])


def _sort_heads(attention: AttentionBlock) -> None:
    scores, d = unit_scores(attention), attention.head_channels
    rows, columns = _unit_index(scores, 3 * d), _unit_index(scores, d)  # per head: its [q | k | v] rows
    _permute([(attention.qkv.weight, rows, 0), (attention.qkv.bias, rows, 0), (attention.proj.weight, columns, 1)])


@torch.no_grad()
def sort_width_units(model: nn.Module) -> nn.Module:
    """A copy of ``model`` computing the same function, each ResBlock's norm groups and each attention
    layer's heads reordered by descending ``unit_scores``: keeping the k most important units is
    keeping the first k. ``model`` is left as it was."""
    model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, ResBlock):
            _sort_groups(module)
        elif isinstance(module, AttentionBlock):
            _sort_heads(module)
    return model


# ---------------------------------------------------------------- the physical prune

def unet_spec(model: nn.Module) -> dict:
    """The plain 'unet' spec of a U-Net or elastic U-Net built by ``build_model``."""
    spec = getattr(model, "spec", None)
    if spec is None or spec["architecture"] not in ("unet", "elastic_unet"):
        raise ValueError("need a 'unet' or 'elastic_unet' built by mdmlib.models.registry.build_model (its spec)")
    return {"architecture": "unet",
            "arguments": {k: v for k, v in spec["arguments"].items() if k not in ELASTIC_ARGUMENTS}}


def _check_counts(name: str, counts: Sequence[int], units: Sequence[int]) -> None:
    if len(counts) != len(units) or any(not 1 <= c <= u for c, u in zip(counts, units)):
        raise ValueError(f"{name} {list(counts)}: need 1 to {list(units)} per layer")


def _prefix_state(source: dict[str, Tensor], target: dict[str, Tensor]) -> dict[str, Tensor]:
    """``target``'s entries taken from ``source``: the leading slice of each dimension (the first
    units), the time projection's scale and shift halves cut each."""
    state = {}
    for key, dst in target.items():
        src = source[key]
        if key.endswith(("emb_layers.1.weight", "emb_layers.1.bias")):
            src = torch.cat([half[:len(dst) // 2] for half in src.chunk(2)])
        state[key] = src[tuple(slice(0, n) for n in dst.shape)]
    return state


def prune_subnetwork(model: nn.Module, keep_groups: Sequence[int], keep_heads: Sequence[int],
                     drop: Sequence[bool]) -> UNet:
    """The sub-network of a sorted (``sort_width_units``) U-Net as a registered 'unet': the first
    ``keep_groups[b]`` norm groups of ResBlock b, the first ``keep_heads[a]`` heads of attention layer
    a (``width_layers`` order), without the depth layers j with ``drop[j]``; on ``model``'s device."""
    spec = unet_spec(model)
    if spec["arguments"].get("dropped_layers"):
        raise ValueError("the model has dropped depth layers already: prune its undropped form")
    blocks, attentions = width_layers(model)
    _check_counts("keep_groups", keep_groups, [b.out_norm.num_groups for b in blocks])
    _check_counts("keep_heads", keep_heads, [a.num_heads for a in attentions])
    if len(drop) != len(depth_layers(model)):
        raise ValueError(f"drop: {len(drop)} flags for {len(depth_layers(model))} depth layers")
    widths = [int(k) * b.hidden_channels // b.out_norm.num_groups for k, b in zip(keep_groups, blocks)]
    arguments = {**spec["arguments"], "block_widths": widths, "attention_heads": [int(k) for k in keep_heads],
                 "dropped_layers": [j for j, d in enumerate(drop) if d]}
    with torch.random.fork_rng(devices=[]):  # its initial weights are overwritten: leave the global RNG as it was
        pruned = build_model({"architecture": "unet", "arguments": arguments})
    pruned.load_state_dict(_prefix_state(model.state_dict(), pruned.state_dict()))
    return pruned.to(next(model.parameters()).device).eval()


# ---------------------------------------------------------------- MACs as a function of the gates

def _positions(model: nn.Module) -> dict[int, int]:
    """Spatial positions (H * W) at each ResBlock and attention layer (module id)."""
    res, positions = model.resolution, {}
    for layers in (*model.down, model.middle, *model.up):
        for m in layers:
            if isinstance(m, nn.Conv2d) and m.stride != (1, 1):
                res = (res + 2 * m.padding[0] - m.kernel_size[0]) // m.stride[0] + 1
            elif isinstance(m, nn.Upsample):
                res = int(res * m.scale_factor)
            elif isinstance(m, (ResBlock, AttentionBlock)):
                positions[id(m)] = res * res
    return positions


def _block_macs(block: ResBlock, positions: int) -> tuple[int, int]:
    """(MACs independent of the hidden width, MACs per norm group): the convolutions and the time
    projection as ``forward_macs`` counts them (products only; no norms, biases or activations)."""
    conv1, conv2 = block.in_layers[-1], block.out_layers[-1]
    per_channel = positions * (conv1.weight[0].numel() + block.out_channels * conv2.weight[0, 0].numel())
    per_channel += 2 * block.emb_layers[1].in_features  # its scale and its shift
    fixed = positions * block.skip.weight.numel() if isinstance(block.skip, nn.Conv2d) else 0
    return fixed, per_channel * (block.hidden_channels // block.out_norm.num_groups)


def _head_macs(attention: AttentionBlock, positions: int) -> int:
    """MACs per head: its q, k, v rows, QK^T and AV (positions^2 * d each), its projection columns."""
    d, c = attention.head_channels, attention.channels
    return positions * d * 4 * c + 2 * positions * positions * d


def macs_table(model: nn.Module) -> MacsTable:
    """The MACs table of a (sorted elastic or plain) U-Net built by ``build_model``: the per-layer
    terms counted analytically, ``fixed`` the rest of one ``spec_macs`` count of the whole network."""
    blocks, attentions = width_layers(model)
    positions = _positions(model)
    depth_of = {id(m): j for j, layer in enumerate(depth_layers(model)) for m in depth_entry(model, layer)[:2]}
    block_terms = [_block_macs(b, positions[id(b)]) for b in blocks]
    head_macs = [_head_macs(a, positions[id(a)]) for a in attentions]
    groups = [b.out_norm.num_groups for b in blocks]
    heads = [a.num_heads for a in attentions]
    layers = sum(f + g * m for (f, m), g in zip(block_terms, groups)) + sum(h * m for h, m in zip(heads, head_macs))
    return MacsTable(fixed=float(spec_macs(unet_spec(model)) - layers),
                     block_fixed=tuple(float(f) for f, _ in block_terms),
                     group_macs=tuple(float(m) for _, m in block_terms), block_groups=tuple(groups),
                     block_depth=tuple(depth_of.get(id(b)) for b in blocks),
                     head_fixed=(0.0,) * len(attentions), head_macs=tuple(float(m) for m in head_macs),
                     heads=tuple(heads), head_depth=tuple(depth_of.get(id(a)) for a in attentions),
                     depth_layers=len(depth_layers(model)))


def table_macs(table: MacsTable, keep_groups: Sequence[Any], keep_heads: Sequence[Any],
               depth_kept: Sequence[Any]) -> Any:
    """MacsTable's formula for kept groups per ResBlock, kept heads per attention layer and a keep
    flag (or gate) per depth layer; plain numbers give a float, tensors a tensor."""
    if (len(keep_groups), len(keep_heads), len(depth_kept)) != (len(table.block_groups), len(table.heads),
                                                                 table.depth_layers):
        raise ValueError("keep counts and MACs table describe different networks")

    def gate(j: int | None) -> Any:
        return 1 if j is None else depth_kept[j]

    blocks = sum(gate(j) * (f + k * m) for j, f, k, m in
                 zip(table.block_depth, table.block_fixed, keep_groups, table.group_macs))
    heads = sum(gate(j) * (f + k * m) for j, f, k, m in
                zip(table.head_depth, table.head_fixed, keep_heads, table.head_macs))
    return table.fixed + blocks + heads
