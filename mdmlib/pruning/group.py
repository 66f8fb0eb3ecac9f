"""TDC Algorithm 1, stage 2's pruning for one group: the base model pruned to the group's FLOPs
limit by a criterion (the same keep ratio in every layer, channels chosen by the criterion) or by
the proxy search (per-layer ratios from the memory-bank loop), written as a checkpoint the
group's fine-tune starts from, with a report of what was done and, for the proxy, its audit files.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from mdmlib.config import ProxyConfig, RunConfig
from mdmlib.core.adam import Adam
from mdmlib.core.images import to_model_range
from mdmlib.core.intervals import Interval
from mdmlib.core.io import atomic_write_text
from mdmlib.core.rng import seeded_global_rng
from mdmlib.core.schedule import NoiseSchedule, epsilon_loss_per_sample
from mdmlib.models.macs import count_parameters
from mdmlib.models.registry import build_model
from mdmlib.models.unet import AttentionBlock, ResBlock, prunable_layers
from mdmlib.pruning.chat import ChatProposer
from mdmlib.pruning.criteria import PROXY
from mdmlib.pruning.importance import LayerScores, layer_scores
from mdmlib.pruning.proxy import (
    MutationProposer,
    SearchProblem,
    bank_rows,
    proxy_search,
)
from mdmlib.pruning.prune import prune_unet
from mdmlib.pruning.scheme import (
    PruningScheme,
    UNetShape,
    macs_counter,
    scheme_widths,
    spec_macs,
    unet_shape,
    uniform_scheme,
)
from mdmlib.training.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)


def layer_names(model: torch.nn.Module) -> tuple[str, ...]:
    """'<module path>' of every ResBlock, then of every attention layer (a scheme's order)."""
    names = {id(m): n for n, m in model.named_modules()}
    layers = [group[i] for group, i in prunable_layers(model)]
    blocks = [names[id(m)] for m in layers if isinstance(m, ResBlock)]
    return (*blocks, *(f"{names[id(m)]} ({m.label})" for m in layers if isinstance(m, AttentionBlock)))


def make_proposer(settings: ProxyConfig, seed: int):
    if settings.proposer == "chat":
        return ChatProposer(settings.endpoint, settings.chat_model, settings.api_key_env)
    return MutationProposer(seed)


class RecoveredLoss:
    """A scheme's score: the base model pruned by it (channels by magnitude), fine-tuned for a few
    steps on the group's timesteps, then its epsilon loss on fixed validation images, timesteps
    and noise of the group (the same for every scheme)."""

    def __init__(self, model, shape: UNetShape, scores: LayerScores, schedule: NoiseSchedule, interval: Interval,
                 train: torch.Tensor, val: torch.Tensor, steps: int, batch_size: int, lr: float, seed: int):
        self.model, self.shape, self.scores, self.schedule, self.interval = model, shape, scores, schedule, interval
        self.train, self.steps, self.batch_size, self.lr, self.seed = train, steps, batch_size, lr, seed
        g = torch.Generator().manual_seed(seed + 1)
        self.val, self.val_noise = val, torch.randn(val.shape, generator=g)
        self.val_t = torch.linspace(interval.lo, interval.hi - 1, len(val)).round().long()

    def __call__(self, scheme: PruningScheme) -> float:
        pruned = prune_unet(self.model, scheme_widths(self.shape, scheme), self.scores).train()
        optimizer = Adam(pruned.parameters(), lr=self.lr)
        g = torch.Generator().manual_seed(self.seed)
        with seeded_global_rng(self.seed):  # dropout draws from it: the same scheme scores the same in every run
            for _ in range(self.steps):
                x0 = self.train[torch.randint(len(self.train), (self.batch_size,), generator=g)]
                t = torch.randint(self.interval.lo, self.interval.hi, (self.batch_size,), generator=g)
                noise = torch.randn(x0.shape, generator=g)
                optimizer.zero_grad(set_to_none=True)
                epsilon_loss_per_sample(pruned, self.schedule, x0, t, noise).mean().backward()
                optimizer.step()
        with torch.no_grad():
            return float(epsilon_loss_per_sample(pruned.eval(), self.schedule, self.val, self.val_t,
                                                 self.val_noise).mean())


def prune_for_group(base_path: str | Path, method: str, interval: Interval, limit_ratio: float,
                    train_images: np.ndarray, val_images: np.ndarray, cfg: RunConfig, name: str,
                    out_checkpoint: str | Path, out_report: str | Path, audit_dir: str | Path,
                    out_fresh: str | Path | None = None, log: Callable[[str], None] = print) -> dict:
    """Prune the base checkpoint for one group and write its checkpoint and report (and, with
    ``out_fresh``, a freshly initialised network of the same shape); returns the report.
    Nothing is written when the limit cannot be met (ValueError naming the key)."""
    started = time.perf_counter()
    base = load_checkpoint(base_path)
    model = model_from_checkpoint(base)  # EMA weights: what the pipeline samples with
    shape, spec = unet_shape(model), model.spec
    count = macs_counter(spec, shape)
    full = spec_macs(spec)
    limit = limit_ratio * full
    key = (f"the FLOPs limit {limit_ratio:.3f} F of group {interval.label()} (intervals.snr.min_flops_ratio, "
           f"tdc.groups)")
    schedule = NoiseSchedule.from_name(cfg.diffusion.schedule, cfg.diffusion.timesteps)
    g = torch.Generator().manual_seed(cfg.training.seed)
    train = to_model_range(train_images)
    images = train[torch.randperm(len(train), generator=g)[:cfg.tdc.importance_images]]
    search = None
    if method == PROXY:
        uniform_scheme(limit, count, shape, key)  # refuses an unreachable limit before any search
        scores, record = layer_scores(model, "magnitude", schedule, images, interval, cfg.training.seed)
        settings = cfg.tdc.proxy
        val = to_model_range(val_images[:settings.eval_images])
        problem = SearchProblem(shape, layer_names(model), full, limit, (interval.lo, interval.hi), count)
        proposer = make_proposer(settings, cfg.training.seed)
        evaluate = RecoveredLoss(model, shape, scores, schedule, interval, train, val, settings.recovery_steps,
                                 min(cfg.training.batch_size, len(train)), cfg.training.learning_rate, cfg.training.seed)
        best, bank = proxy_search(problem, proposer, evaluate, settings.rounds, settings.candidates, log)
        widths = best.widths
        search = {"proposer": proposer.name, "rounds": settings.rounds, "candidates": settings.candidates,
                  "recovery_steps": settings.recovery_steps, "evaluated": len(bank), "best_loss": best.loss,
                  "recovery_step_total": len(bank) * settings.recovery_steps}
        write_audit(audit_dir, problem.description(bank, settings.candidates), bank_rows(bank),
                    getattr(proposer, "transcript", None))
    else:
        scheme = uniform_scheme(limit, count, shape, key)  # refuses an unreachable limit before scoring
        scores, record = layer_scores(model, method, schedule, images, interval, cfg.training.seed)
        widths = scheme_widths(shape, scheme)
    pruned = prune_unet(model, widths, scores)
    macs = spec_macs(pruned.spec)
    if macs > limit:  # a scheme is fitted to the limit before it is applied: this would be a bug
        raise RuntimeError(f"pruned model has {macs} MACs, over the limit {limit:.0f}")
    record = {"model_spec": pruned.spec, "config": cfg.to_dict(), "name": name, "in_channels": pruned.in_channels,
              "resolution": pruned.resolution, "interval": interval.to_list(), "recipe": "adm"}
    weights = pruned.state_dict()
    if out_fresh is not None:  # seeded as a training job's fresh model is
        torch.manual_seed(cfg.training.seed)
        fresh = build_model(pruned.spec).state_dict()
        save_checkpoint(out_fresh, record | {"step": 0, "model": fresh, "ema": fresh, "init": None})
    save_checkpoint(out_checkpoint, record | {
        "step": base["step"], "iterations": base.get("iterations"), "model": weights, "ema": weights,
        "init": {"path": str(base_path), "name": base["name"], "step": base["step"]}})
    report = {"name": name, "method": method, "interval": interval.to_list(), "limit_ratio": limit_ratio,
              "full_macs": full, "macs": macs, "macs_ratio": macs / full, "parameters": count_parameters(pruned),
              "base_parameters": count_parameters(model), "base": {"name": base["name"], "step": base["step"]},
              "widths": widths, "full_widths": {"block_widths": list(shape.block_widths),
                                                "attention_heads": list(shape.attention_heads)},
              "scores": record, "search": search, "seconds": time.perf_counter() - started}
    atomic_write_text(out_report, json.dumps(report, indent=1))
    log(f"{name}: {method} to {macs / full:.3f} F (limit {limit_ratio:.3f}), {report['parameters']} parameters, "
        f"{report['seconds']:.1f} s")
    return report


def write_audit(folder: str | Path, description: dict, bank: list[dict], transcript: list[dict] | None) -> None:
    folder = Path(folder)
    atomic_write_text(folder / "description.json", json.dumps(description, indent=1))
    atomic_write_text(folder / "memory_bank.json", json.dumps(bank, indent=1))
    if transcript is not None:
        atomic_write_text(folder / "chat_transcript.json", json.dumps(transcript, indent=1))
