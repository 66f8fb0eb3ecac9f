"""Importance scores of a U-Net's prunable channels and heads, by a registered criterion.

A ResBlock's hidden channels are scored by torch-pruning on the dependency group that
torch-pruning traces from the block's first convolution (that convolution's filters, the
time projection's scale and shift rows, the second norm, the second convolution's inputs).
An attention layer's heads are scored here, on each head's q, k, v rows and output columns,
the same way (torch-pruning treats the attention matmuls as element-wise, which ties heads
together). Gradient criteria read gradients of the epsilon loss on the group's timesteps only.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch_pruning as tp

from mdmlib.core.intervals import Interval
from mdmlib.core.rng import seeded_global_rng
from mdmlib.core.schedule import NoiseSchedule, epsilon_loss_per_sample
from mdmlib.core.targets import resolve
from mdmlib.models.unet import AttentionBlock, ResBlock, prunable_layers
from mdmlib.pruning.criteria import criterion

DIFF_PRUNING_THRESHOLD = 0.05  # Diff-Pruning's thr: stop once the loss < thr x its largest value


def random_importance():
    return tp.importance.RandomImportance()


def magnitude_importance():
    return tp.importance.MagnitudeImportance(p=1)


def taylor_importance():
    return tp.importance.TaylorImportance(multivariable=True)


def diff_pruning_importance():
    return tp.importance.TaylorImportance(multivariable=False)


@dataclass
class LayerScores:
    """Per ResBlock (``prunable_layers`` order): a score per hidden channel; per attention layer: per head."""

    blocks: list[torch.Tensor]
    heads: list[torch.Tensor]


def accumulate_gradients(model: torch.nn.Module, schedule: NoiseSchedule, images: torch.Tensor, interval: Interval,
                         mode: str, generator: torch.Generator, threshold: float = DIFF_PRUNING_THRESHOLD,
                         steps: int = 20) -> list[int]:
    """Fills ``.grad`` with epsilon-loss gradients on timesteps of ``interval``; returns the
    timesteps used. "batch": one backward, t uniform in the interval per image. "ascending"
    (Diff-Pruning): one fixed noise, t rising through ``steps`` points of the interval, a backward
    at each, stopped once the loss falls below ``threshold`` x the largest loss seen."""
    model.zero_grad(set_to_none=True)
    noise = torch.randn(images.shape, generator=generator)
    if mode == "batch":
        t = torch.randint(interval.lo, interval.hi, (len(images),), generator=generator)
        epsilon_loss_per_sample(model, schedule, images, t, noise).mean().backward()
        return sorted(set(t.tolist()))
    grid = torch.linspace(interval.lo, interval.hi - 1, min(steps, interval.size)).round().long().unique()
    used, largest = [], 0.0
    for t_value in grid.tolist():
        t = torch.full((len(images),), t_value, dtype=torch.long)
        loss = epsilon_loss_per_sample(model, schedule, images, t, noise).mean()
        loss.backward()
        used.append(t_value)
        value = float(loss.detach())
        largest = max(largest, value)
        if value < threshold * largest:
            break
    return used


def head_scores(attention: AttentionBlock, name: str, generator: torch.Generator) -> torch.Tensor:
    """One score per head from its q, k, v rows of ``qkv`` and its columns of ``proj``; ``name``
    is a criterion's ``heads`` kind (mdmlib.pruning.criteria.HEAD_SCORES)."""
    heads, d = attention.num_heads, attention.head_channels
    if name == "random":
        return torch.rand(heads, generator=generator)
    qkv = attention.qkv.weight.reshape(heads, 3 * d, -1)
    proj = attention.proj.weight.reshape(attention.proj.weight.shape[0], heads, d).transpose(0, 1)
    scores = []
    for h in range(heads):
        weights = (qkv[h], proj[h])
        if name == "magnitude":
            scores.append(sum(w.abs().sum() for w in weights))
        elif attention.qkv.weight.grad is None:
            raise ValueError(f"head score {name!r} needs gradients: none were computed")
        else:
            grads = (attention.qkv.weight.grad.reshape(heads, 3 * d, -1)[h],
                     attention.proj.weight.grad.reshape(-1, heads, d).transpose(0, 1)[h])
            products = [w * g for w, g in zip(weights, grads)]
            scores.append(sum(p.sum() for p in products).abs() if name == "taylor"  # else taylor_sum
                          else sum(p.abs().sum() for p in products))
    return torch.stack([torch.as_tensor(s, dtype=torch.float32) for s in scores]).detach()


def dependency_graph(model: torch.nn.Module) -> tp.DependencyGraph:
    x = torch.zeros(1, model.in_channels, model.resolution, model.resolution)
    return tp.DependencyGraph().build_dependency(model, example_inputs=(x, torch.zeros(1, dtype=torch.long)))


def layer_scores(model: torch.nn.Module, name: str, schedule: NoiseSchedule, images: torch.Tensor,
                 interval: Interval, seed: int = 0) -> tuple[LayerScores, dict]:
    """Scores of every ResBlock's hidden channels and every attention layer's heads under the
    criterion ``name``, gradients (where it reads them) on ``interval``'s timesteps; and a record
    of what was read (timesteps, images)."""
    entry = criterion(name)
    generator = torch.Generator().manual_seed(seed)
    model = model.eval()
    record = {"criterion": name, "images": len(images)}
    graph = dependency_graph(model)  # traced first: tracing runs a forward pass
    if entry.gradients:
        record["timesteps"] = accumulate_gradients(model, schedule, images, interval, entry.gradients, generator)
    importance = resolve(entry.importance)()
    blocks, heads = [], []
    with seeded_global_rng(seed):  # torch-pruning's random importance draws from the global generator
        for group, i in prunable_layers(model):
            score_layer(group[i], graph, importance, entry, generator, blocks, heads)
    model.zero_grad(set_to_none=True)
    return LayerScores(blocks, heads), record


def score_layer(layer, graph, importance, entry, generator, blocks: list, heads: list) -> None:
    if isinstance(layer, ResBlock):
        conv = layer.in_layers[-1]
        dep = graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=list(range(conv.out_channels)))
        blocks.append(importance(dep).detach().float())
    elif isinstance(layer, AttentionBlock):
        heads.append(head_scores(layer, entry.heads, generator))

