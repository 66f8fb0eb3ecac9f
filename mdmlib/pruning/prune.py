"""The physical prune: a U-Net with channels and heads removed, rebuilt as a registered model.

ResBlock hidden channels are removed through torch-pruning's dependency graph (which keeps the
first convolution, the time projection's scale and shift, the norm and the second convolution
consistent), whole norm groups at a time so each kept group is normalised as before; heads are
removed by slicing their q, k, v rows and output columns. The result is loaded into a fresh
model of the pruned spec (``mdmlib.models.registry``), so its checkpoint rebuilds it from the
recorded per-layer widths alone.
"""
from __future__ import annotations

import copy

import torch
import torch_pruning as tp

from mdmlib.models.registry import build_model
from mdmlib.models.unet import AttentionBlock, ResBlock, prunable_layers
from mdmlib.pruning.importance import LayerScores, dependency_graph
from mdmlib.pruning.scheme import kept_indices, pruned_spec, unet_shape


def prune_heads(attention: AttentionBlock, keep: list[int]) -> AttentionBlock:
    """A copy of ``attention`` with only the heads ``keep`` (their q, k, v rows and output columns)."""
    d = attention.head_channels
    rows = [h * 3 * d + k for h in keep for k in range(3 * d)]
    columns = [h * d + k for h in keep for k in range(d)]
    pruned = AttentionBlock(attention.channels, attention.channels_per_head, attention.label, len(keep))
    pruned.norm.load_state_dict(attention.norm.state_dict())
    with torch.no_grad():
        pruned.qkv.weight.copy_(attention.qkv.weight[rows])
        pruned.qkv.bias.copy_(attention.qkv.bias[rows])
        pruned.proj.weight.copy_(attention.proj.weight[:, columns])
        pruned.proj.bias.copy_(attention.proj.bias)
    return pruned.to(attention.qkv.weight.device)


def prune_unet(model: torch.nn.Module, widths: dict[str, list[int]], scores: LayerScores) -> torch.nn.Module:
    """``model`` (a U-Net, left unchanged) with each ResBlock cut to ``widths['block_widths']`` and
    each attention layer to ``widths['attention_heads']``, keeping the highest-scoring norm groups
    (mean channel score) and heads; a fresh registered model of the pruned spec with those weights."""
    shape = unet_shape(model)
    wider = [k for k, (w, full) in enumerate(zip(widths["block_widths"], shape.block_widths)) if w > full] + \
        [k for k, (h, full) in enumerate(zip(widths["attention_heads"], shape.attention_heads)) if h > full]
    if wider or len(widths["block_widths"]) != len(shape.block_widths) \
            or len(widths["attention_heads"]) != len(shape.attention_heads):
        raise ValueError(f"widths {widths} do not prune {shape} (layers {wider} would widen, or counts differ)")
    work = copy.deepcopy(model).cpu().eval()
    graph = dependency_graph(work)
    blocks = [(g, i) for g, i in prunable_layers(work) if isinstance(g[i], ResBlock)]
    attentions = [(g, i) for g, i in prunable_layers(work) if isinstance(g[i], AttentionBlock)]
    for (group, i), width, size, score in zip(blocks, widths["block_widths"], shape.group_sizes, scores.blocks):
        block = group[i]
        if width == block.hidden_channels:
            continue
        keep = set(kept_indices(score, width // size, size))
        removed = [c for c in range(block.hidden_channels) if c not in keep]
        graph.get_pruning_group(block.in_layers[-1], tp.prune_conv_out_channels, idxs=removed).prune()
        block.hidden_channels, block.out_norm.num_groups = width, width // size
    for (group, i), heads, score in zip(attentions, widths["attention_heads"], scores.heads):
        if heads != group[i].num_heads:
            group[i] = prune_heads(group[i], kept_indices(score, heads))
    pruned = build_model(pruned_spec(model.spec, widths))
    pruned.load_state_dict(work.state_dict())
    return pruned.eval()
