"""Training the Expert Routing Agent on frozen experts: DiffPruning's pruning algorithm (supp. Alg. 1).

Each iteration draws the agent's soft gates (Eq. 6-9), runs every expert's gated sub-network
(Eq. 8, 10, 11) on one mini-batch at timesteps of its own interval (Eq. 5), prices the mixture
(Eq. 12-14) and steps the agent on J(T_d) (Eq. 15). Only the agent learns: the experts are the
elastic width checkpoints' EMA weights, frozen. The gradient reaches the agent in two passes, the
experts' (the losses to the gates) and the agent's (the gates and the MACs term to its parameters),
so that the curve can say how the time splits between them; together they are J's gradient.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mdmlib.config import RunConfig
from mdmlib.core.adam import Adam
from mdmlib.core.images import to_model_range
from mdmlib.core.io import atomic_write, atomic_write_text
from mdmlib.core.schedule import NoiseSchedule
from mdmlib.models.elastic import (
    MacsTable,
    SubnetGates,
    gated_forward,
    macs_table,
    table_macs,
)
from mdmlib.routing.agent import (
    ExpertRoutingAgent,
    ExpertShape,
    era_objective,
    mixture_macs,
)
from mdmlib.training.checkpoint import load_checkpoint, model_from_checkpoint

TIMING_COLUMNS = ("agent_seconds", "expert_seconds")  # the curve's columns that differ between identical runs
STATE_FORMAT = "mdmlib.routing_agent_state/v1"


@dataclass
class FrozenExpert:
    name: str
    interval: tuple[int, int]  # timestep indices [lo, hi)
    model: nn.Module
    table: MacsTable

    @property
    def size(self) -> int:
        return self.interval[1] - self.interval[0]


def load_experts(paths: Sequence[str | Path], device: torch.device) -> list[FrozenExpert]:
    """The experts' EMA weights in eval mode without gradients; intervals clean to noisy, disjoint."""
    experts = []
    for path in paths:
        ckpt = load_checkpoint(path)
        model = model_from_checkpoint(ckpt, weights="ema").to(device).eval().requires_grad_(False)
        lo, hi = (int(v) for v in ckpt["interval"])
        experts.append(FrozenExpert(ckpt["name"], (lo, hi), model, macs_table(model)))
    for a, b in zip(experts, experts[1:]):
        if a.interval[1] > b.interval[0]:
            raise ValueError(f"experts {a.name} {list(a.interval)} and {b.name} {list(b.interval)}: "
                             "need disjoint intervals, clean to noisy")
    return experts


def smallest_macs(table: MacsTable) -> float:
    """The smallest sub-network the agent can choose: one unit per width layer and, of the depth layers,
    only the most important (the agent's keep probabilities start at p_1 = 1, for depth as for width)."""
    keep_depth = [j == 0 for j in range(table.depth_layers)]  # depth_layers lists them most important first
    return float(table_macs(table, [1] * len(table.block_groups), [1] * len(table.heads), keep_depth))


def _whole(table: MacsTable) -> SubnetGates:
    return SubnetGates([None] * len(table.block_groups), [None] * len(table.heads), [None] * table.depth_layers)


def _tensors(gates: SubnetGates) -> list[Tensor]:
    return [*gates.blocks, *gates.heads, *gates.depth]


def _leaves(gates: SubnetGates) -> SubnetGates:
    """The gates cut from the agent's graph, as leaves that collect the experts' gradient."""
    def cut(g: Tensor) -> Tensor:
        return g.detach().requires_grad_()
    return SubnetGates([cut(g) for g in gates.blocks], [cut(g) for g in gates.heads], [cut(g) for g in gates.depth])


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class AgentTrainer:
    """One Alg. 1 iteration at a time (``step``), with the agent's and the experts' seconds apart."""

    def __init__(self, experts: list[FrozenExpert], agent: ExpertRoutingAgent, schedule: NoiseSchedule,
                 budget: float, full: float, cfg: RunConfig, device: torch.device):
        self.experts, self.agent, self.schedule = experts, agent, schedule
        self.budget, self.full, self.device = budget, full, device
        settings = cfg.diffpruning.agent
        self.batch_size = settings.batch_size
        self.optimizer = Adam(agent.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay,
                              decoupled_weight_decay=True)  # AdamW
        seed = cfg.training.seed
        self.data = torch.Generator().manual_seed(seed)  # images, timesteps, noise: on the host, any device alike
        self.gumbel = torch.Generator(device=device).manual_seed(seed + 1)
        self.tables = [e.table for e in experts]
        self.sizes = [e.size for e in experts]

    def mixture(self, gates: Sequence[SubnetGates]) -> Tensor:
        return mixture_macs(gates, self.tables, self.sizes)

    def state(self) -> dict:
        """Everything the next iteration depends on: the agent, AdamW and both generators."""
        return {"agent": self.agent.state_dict(), "optimizer": self.optimizer.state_dict(),
                "data": self.data.get_state(), "gumbel": self.gumbel.get_state()}

    def load_state(self, state: dict) -> None:
        self.agent.load_state_dict(state["agent"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.data.set_state(state["data"])
        self.gumbel.set_state(state["gumbel"])

    def _batch(self, train_images: np.ndarray) -> list[tuple[Tensor, Tensor, Tensor]]:
        """(x_t, t, noise) per expert: one mini-batch of images, timesteps uniform in each interval."""
        index = torch.randperm(len(train_images), generator=self.data)[:self.batch_size].numpy()
        x0 = to_model_range(train_images[index])
        batch = []
        for expert in self.experts:
            t = torch.randint(*expert.interval, (len(x0),), generator=self.data)
            noise = torch.randn(x0.shape, generator=self.data)
            x_t = self.schedule.q_sample(x0, t, noise)
            batch.append(tuple(v.to(self.device) for v in (x_t, t, noise)))
        return batch

    def step(self, train_images: np.ndarray) -> dict:
        """One iteration: J's terms at this step's soft gates, the hard mixture's MACs after the step
        (not timed), and the seconds of the agent (gates, MACs, backward into beta, AdamW) and of
        the experts (gated forward and backward to the gates)."""
        batch = self._batch(train_images)
        self.optimizer.zero_grad(set_to_none=True)
        start = _clock(self.device)
        soft = self.agent(self.gumbel)  # Eq. 6, 7, 9
        macs = self.mixture(soft)  # Eq. 12-14, rounding by the STE
        leaves = [_leaves(g) for g in soft]
        agent_seconds = _clock(self.device) - start

        start = _clock(self.device)  # Eq. 5 of each gated expert (Eq. 8, 10, 11), backward to the gates
        losses = [F.mse_loss(gated_forward(e.model, x_t, t, g), noise)
                  for e, g, (x_t, t, noise) in zip(self.experts, leaves, batch)]
        torch.stack(losses).mean().backward()
        expert_seconds = _clock(self.device) - start

        start = _clock(self.device)  # Eq. 15: the loss gradient at the gates and the MACs term, into beta
        total, loss_term, macs_term = era_objective([v.detach() for v in losses], macs, self.budget)
        through_gates = sum((s * g.grad).sum() for gates, cut in zip(soft, leaves)
                            for s, g in zip(_tensors(gates), _tensors(cut)) if g.grad is not None)
        (macs_term + through_gates).backward()
        self.optimizer.step()
        agent_seconds += _clock(self.device) - start
        loss_term, macs_term, total, macs = (float(v.detach()) for v in (loss_term, macs_term, total, macs))
        return {"loss_term": loss_term, "macs_term": macs_term, "total": total, "soft_macs_ratio": macs / self.full,
                "hard_macs_ratio": float(self.mixture(self.agent.hard_gates())) / self.full,  # after the step
                "agent_seconds": agent_seconds, "expert_seconds": expert_seconds}


def refuse_unreachable(budgets: Sequence[float], tables: Sequence[MacsTable], sizes: Sequence[int]) -> None:
    """ValueError naming ``diffpruning.budgets`` for each budget below the smallest mixture the agent
    can choose (``smallest_macs`` per expert, weighted by interval length as Eq. 14)."""
    weights = [s / sum(sizes) for s in sizes]
    smallest = sum(w * smallest_macs(t) for w, t in zip(weights, tables))
    whole = sum(w * table_macs(t, t.block_groups, t.heads, [True] * t.depth_layers) for w, t in zip(weights, tables))
    low = [b for b in budgets if b * whole < smallest]
    if low:
        raise ValueError(f"config key 'diffpruning.budgets': {low} below {smallest / whole:.4f}, the smallest "
                         "mixture the agent can choose on this U-Net (one unit per width layer, one depth layer "
                         "per expert)")


def check_budgets(cfg: RunConfig) -> None:
    """Every budget of ``diffpruning.budgets`` against the agent's smallest mixture on the config's
    U-Net (counted on the meta device). The pipeline asks this when DiffPruning's jobs enter the
    DAG, before any of them runs."""
    from mdmlib.models.registry import new_model

    with torch.device("meta"):
        model = new_model(cfg.model, cfg.data.channels, cfg.data.resolution)
    refuse_unreachable(cfg.diffpruning.budgets, [macs_table(model)], [1])


def train_routing_agent(expert_paths: Sequence[str | Path], train_images: np.ndarray, budget_fraction: float,
                        cfg: RunConfig, log: Callable[[str], None] = print, names: Sequence[str] | None = None,
                        device: str | torch.device = "cpu", state_path: str | Path | None = None,
                        stop_after: int | None = None) -> dict | None:
    """Train the agent for ``budget_fraction`` of the full mixture's MACs per step (supp. Alg. 1) on the
    experts at ``expert_paths`` (clean to noisy; ``names``: their expected checkpoint names) and
    uint8 ``train_images``; returns each expert's architecture, the mixture's MACs, timings and the
    curve. ValueError naming the config key, before any training, when the budget is unreachable.
    ``state_path``: saved at every progress line and resumed from (a killed job continues where it
    was, to the same result); ``stop_after``: return None after that iteration (a kill, for tests)."""
    started, device = time.perf_counter(), torch.device(device)
    settings = cfg.diffpruning.agent
    experts = load_experts(expert_paths, device)
    if names is not None and [e.name for e in experts] != list(names):
        raise ValueError(f"expert checkpoints {[e.name for e in experts]}, expected {list(names)}")
    if settings.batch_size > len(train_images):
        raise ValueError(f"config key 'diffpruning.agent.batch_size': {settings.batch_size} exceeds the "
                         f"{len(train_images)} training images")
    full = round(float(mixture_macs([_whole(e.table) for e in experts], [e.table for e in experts],
                                    [e.size for e in experts])))
    refuse_unreachable([budget_fraction], [e.table for e in experts], [e.size for e in experts])
    # depth_layers lists each expert's depth layers most important first: the ranking is the index order.
    shapes = [ExpertShape.from_table(e.table, range(e.table.depth_layers)) for e in experts]
    agent = ExpertRoutingAgent(shapes, settings.input_dim, settings.hidden, cfg.training.seed,
                               settings.temperature).to(device)
    trainer = AgentTrainer(experts, agent, NoiseSchedule.from_name(cfg.diffusion.schedule, cfg.diffusion.timesteps),
                           budget_fraction * full, float(full), cfg, device)
    settings_now = _fingerprint(experts, budget_fraction, cfg)
    curve = _resume(state_path, settings_now, trainer, log)
    every = max(1, settings.iterations // 10)
    for iteration in range(len(curve) + 1, settings.iterations + 1):
        curve.append({"iteration": iteration, **trainer.step(train_images)})
        if iteration % every == 0 or iteration == settings.iterations:
            row = curve[-1]
            log(f"agent m{round(budget_fraction * 1000)} iteration {iteration}/{settings.iterations}: loss term "
                f"{row['loss_term']:.4f}, MACs term {row['macs_term']:.4f}, hard MACs {row['hard_macs_ratio']:.3f} F")
            if state_path is not None:
                state = {"format": STATE_FORMAT, "settings": settings_now, "curve": curve, **trainer.state()}
                atomic_write(state_path, lambda f: torch.save(state, f))
        if stop_after is not None and iteration >= stop_after:
            return None
    return _result(agent, experts, budget_fraction, full, curve, time.perf_counter() - started)


def _fingerprint(experts: list[FrozenExpert], fraction: float, cfg: RunConfig) -> dict:
    """What a saved state must match to be resumed: the budget, the experts and the agent's settings."""
    return {"budget": fraction, "experts": [[e.name, *e.interval] for e in experts],
            "agent": asdict(cfg.diffpruning.agent), "seed": cfg.training.seed}


def _resume(state_path: str | Path | None, settings: dict, trainer: AgentTrainer,
            log: Callable[[str], None]) -> list[dict]:
    """The curve so far, with the trainer restored, from a state of the same settings; [] otherwise.
    A state that cannot be read is refused with its path named, never silently replaced."""
    if state_path is None or not Path(state_path).is_file():
        return []
    try:
        state = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"routing agent state {state_path}: unreadable ({type(exc).__name__}); delete it to start "
                         "afresh") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"routing agent state {state_path}: not an {STATE_FORMAT} file; delete it to start afresh")
    if state["settings"] != settings:
        log(f"routing agent state {state_path}: other settings, starting afresh")
        return []
    trainer.load_state(state)
    log(f"routing agent resumed at iteration {len(state['curve'])}")
    return list(state["curve"])


def _result(agent: ExpertRoutingAgent, experts: list[FrozenExpert], fraction: float, full: int,
            curve: list[dict], seconds: float) -> dict:
    total_steps = sum(e.size for e in experts)
    chosen = []
    for expert, arch in zip(experts, agent.architecture()):
        macs = round(float(table_macs(expert.table, arch["groups"], arch["heads"], [float(d) for d in arch["depth"]])))
        chosen.append({"name": expert.name, "interval": list(expert.interval), **arch, "macs": macs,
                       "macs_ratio": macs / full})
    mixture = sum(e.size / total_steps * c["macs"] for e, c in zip(experts, chosen))
    agent_seconds = sum(row["agent_seconds"] for row in curve)
    expert_seconds = sum(row["expert_seconds"] for row in curve)
    return {"budget": fraction, "full_macs": full, "mixture_macs": mixture, "macs_ratio": mixture / full,
            "iterations": len(curve), "seconds": seconds, "agent_seconds": agent_seconds,
            "expert_seconds": expert_seconds, "agent_share": agent_seconds / max(agent_seconds + expert_seconds, 1e-12),
            "experts": chosen, "curve": curve}


def write_agent_outputs(result: dict, architecture_path: str | Path, curve_path: str | Path) -> None:
    """The result less its curve as JSON, the curve as CSV; each written atomically."""
    atomic_write_text(architecture_path, json.dumps({k: v for k, v in result.items() if k != "curve"}, indent=1))
    atomic_write_text(curve_path, pd.DataFrame(result["curve"]).to_csv(index=False))
