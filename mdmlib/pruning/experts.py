"""DiffPruning's checkpoints between training stages: an elastic depth expert with its width units
sorted by importance (the elastic width stage's start, supplement 2.2), and an elastic width expert
physically cut to the sub-network the Expert Routing Agent chose for it (the fine-tune's start).

Each is one self-describing checkpoint (raw = EMA = the new weights; ``init`` names the snapshot
it came from; ``step`` is that snapshot's, as TDC's pruned checkpoints carry their base's). Both
check what they did before writing: the sort keeps the function, the cut is the gated network with
exactly the agent's MACs. On any error nothing is written.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch

from mdmlib.core.intervals import Interval
from mdmlib.models.elastic import (
    gated_forward,
    kept_gates,
    prune_subnetwork,
    sort_width_units,
    unet_spec,
)
from mdmlib.models.macs import count_parameters
from mdmlib.pruning.scheme import spec_macs
from mdmlib.training.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)

RELATIVE_TOLERANCE = 1e-4  # of the output's largest magnitude: float32 sums taken in another order


def probe(ckpt: dict, batch: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random input of the checkpoint's shape, timesteps spread over its interval."""
    generator = torch.Generator().manual_seed(seed)
    size = ckpt["resolution"]
    x = torch.randn(batch, ckpt["in_channels"], size, size, generator=generator)
    lo, hi = ckpt["interval"]
    return x, torch.linspace(lo, hi - 1, batch).round().long()


@torch.no_grad()
def output_difference(model: torch.nn.Module, reference: torch.Tensor, x: torch.Tensor,
                      t: torch.Tensor, what: str) -> float:
    """max |model(x, t) - reference|; RuntimeError when over the float tolerance."""
    difference = float((model(x, t) - reference).abs().max())
    tolerance = RELATIVE_TOLERANCE * max(1.0, float(reference.abs().max()))
    if not difference <= tolerance:  # NaN refused too
        raise RuntimeError(f"{what}: outputs differ by {difference:.3g} (tolerance {tolerance:.3g})")
    return difference


def derived_record(ckpt: dict, snapshot_path: str | Path, name: str, spec: dict, weights: dict) -> dict:
    """A checkpoint started from ``ckpt``: its config, shape, interval and step, new weights."""
    return {"model_spec": spec, "config": ckpt["config"], "name": name, "in_channels": ckpt["in_channels"],
            "resolution": ckpt["resolution"], "interval": list(ckpt["interval"]), "recipe": "adm",
            "step": ckpt["step"], "iterations": ckpt.get("iterations"), "model": weights, "ema": weights,
            "init": {"path": str(snapshot_path), "name": ckpt["name"], "step": ckpt["step"]}}


def write_sorted_expert(snapshot_path: str | Path, out_path: str | Path, name: str) -> dict:
    """The snapshot's EMA weights with each ResBlock's norm groups and each attention layer's heads
    sorted by importance (``sort_width_units``), under the snapshot's own (elastic) spec, so the
    elastic width stage loads it; refuses (RuntimeError) if the sort changed the function."""
    ckpt = load_checkpoint(snapshot_path)
    model = model_from_checkpoint(ckpt)
    unet_spec(model)  # refuses anything but a (elastic) U-Net
    ordered = sort_width_units(model).eval()
    x, t = probe(ckpt)
    with torch.no_grad():
        reference = model(x, t)
    difference = output_difference(ordered, reference, x, t, f"{name}: sorting the width units")
    save_checkpoint(out_path, derived_record(ckpt, snapshot_path, name, ckpt["model_spec"], ordered.state_dict()))
    return {"name": name, "source": {"name": ckpt["name"], "step": ckpt["step"]},
            "interval": list(ckpt["interval"]), "parameters": count_parameters(ordered),
            "max_abs_difference": difference}


def architecture_entry(architecture: dict, interval: Interval | Sequence[int]) -> dict:
    """The routing agent's choice for the expert on ``interval`` (ValueError when it has none)."""
    wanted = interval.to_list() if isinstance(interval, Interval) else [int(v) for v in interval]
    found = [e for e in architecture.get("experts", []) if [int(v) for v in e["interval"]] == wanted]
    if len(found) != 1:
        have = [e["interval"] for e in architecture.get("experts", [])]
        raise ValueError(f"the routing agent's architecture has {len(found)} experts on {wanted} (need one; "
                         f"it has intervals {have})")
    return found[0]


def write_pruned_expert(width_snapshot_path: str | Path, architecture_path: str | Path, out_path: str | Path,
                        name: str) -> dict:
    """The width expert's EMA weights cut to the agent's sub-network for its interval (the first
    units of each layer, the depth layers flagged False removed) as a plain 'unet' checkpoint.
    Refuses when the agent chose for another expert or its MACs differ from the cut network's
    (ValueError), or the cut network is not the gated one (RuntimeError)."""
    ckpt = load_checkpoint(width_snapshot_path)
    entry = architecture_entry(json.loads(Path(architecture_path).read_text()), ckpt["interval"])
    if entry["name"] != ckpt["name"]:
        raise ValueError(f"{name}: {architecture_path} chose for expert {entry['name']!r}, the snapshot "
                         f"{width_snapshot_path} is {ckpt['name']!r}")
    groups, heads, kept = entry["groups"], entry["heads"], entry["depth"]
    if any(not isinstance(k, bool) for k in kept):
        raise ValueError(f"{name}: depth flags {kept} are not booleans (True: kept)")
    model = model_from_checkpoint(ckpt)
    pruned = prune_subnetwork(model, groups, heads, [not k for k in kept])
    full, macs = spec_macs(unet_spec(model)), spec_macs(pruned.spec)
    if macs != round(float(entry["macs"])):
        raise ValueError(f"{name}: the pruned network has {macs} MACs, the routing agent's architecture says "
                         f"{entry['macs']} ({architecture_path})")
    x, t = probe(ckpt)
    with torch.no_grad():
        gated = gated_forward(model, x, t, kept_gates(model, groups, heads, kept))
    difference = output_difference(pruned, gated, x, t, f"{name}: the pruned network against the gated one")
    save_checkpoint(out_path, derived_record(ckpt, width_snapshot_path, name, pruned.spec, pruned.state_dict()))
    return {"name": name, "interval": list(ckpt["interval"]), "macs": macs, "full_macs": full,
            "macs_ratio": macs / full, "parameters": count_parameters(pruned),
            "base_parameters": count_parameters(model), "dropped_layers": pruned.spec["arguments"]["dropped_layers"],
            "max_abs_difference": difference}
