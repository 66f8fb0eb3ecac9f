"""DiffPruning's Expert Routing Agent (ERA): gates for N experts from one small network (Sec. 3.5-3.6).

The agent maps constant random inputs z through a GRU to one output vector o_k per pruned layer of
every expert (supplementary Table 1), turns each o_k into importance-ordered architecture logits v
(supplementary Eq. 4-9) and relaxes them into soft gates with the Gumbel-sigmoid trick (Eq. 7, 9).
The MACs of the chosen sub-networks (Eq. 12-14, rounding with a straight-through estimator) and the
objective of Eq. 15 are plain functions, so the caller's training loop stays the paper's Alg. 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from mdmlib.core.rng import seeded_global_rng
from mdmlib.models.elastic import MacsTable, SubnetGates

EPS = 1e-6  # the supplement's epsilon in inverse-sigmoid(p - eps): p_1 = 1 gives v_1 = logit(1 - eps) ~ 13.8


@dataclass(frozen=True)
class ExpertShape:
    """What the agent prunes in one expert: units per width layer and its depth layers."""

    blocks: tuple[int, ...]  # norm groups per ResBlock, in SubnetGates.blocks order
    heads: tuple[int, ...]  # heads per attention layer, in SubnetGates.heads order
    depth: int = 0  # depth layers (SubnetGates.depth)
    depth_rank: tuple[int, ...] | None = None  # depth-layer indices, most important first; None: index order

    def __post_init__(self):
        if any(units < 1 for units in self.widths):
            raise ValueError(f"every width layer needs at least one unit: {self.widths}")
        if self.depth < 0:
            raise ValueError(f"negative depth {self.depth}")
        if self.depth_rank is not None and sorted(self.depth_rank) != list(range(self.depth)):
            raise ValueError(f"depth_rank {self.depth_rank} is not a permutation of range({self.depth})")

    @classmethod
    def from_table(cls, table: MacsTable, depth_rank: Sequence[int] | None = None) -> ExpertShape:
        rank = None if depth_rank is None else tuple(depth_rank)
        return cls(tuple(table.block_groups), tuple(table.heads), table.depth_layers, rank)

    @property
    def widths(self) -> tuple[int, ...]:
        return self.blocks + self.heads

    @property
    def outputs(self) -> tuple[int, ...]:
        """Output sizes C_k of the agent's heads: the width layers, then the depth head (if any)."""
        return self.widths + ((self.depth,) if self.depth else ())

    @property
    def ranking(self) -> tuple[int, ...]:
        return self.depth_rank if self.depth_rank is not None else tuple(range(self.depth))


def keep_probabilities(o: Tensor) -> Tensor:
    """p_e = sum_{w >= e} softmax(o)_w over the last dim: p_1 = 1 > p_2 > ... > p_W > 0 (supp. Eq. 4-5).

    The supplement prints the sum over w = e+1..W, which gives p_W = 0 (the least important unit
    could never be kept, v_W = -inf) and p_1 = 1 - y_1 (a whole layer could be dropped); its text
    asks for p_1 > ... > p_W with every unit possible, which the sum over w >= e gives.
    """
    y = torch.softmax(o, dim=-1)
    return y.flip(-1).cumsum(-1).flip(-1)  # a reverse cumulative sum


def importance_logits(o: Tensor, eps: float = EPS) -> Tensor:
    """v = inverse-sigmoid(p - eps) (supp. Eq. 6, 9); the clamp keeps v finite at both ends."""
    return torch.logit((keep_probabilities(o) - eps).clamp(eps, 1 - eps))


def gumbel_noise(size: int, generator: torch.Generator, like: Tensor) -> Tensor:
    """n ~ Gumbel(0, 1) as the paper writes Eq. 7, 9. Its mean is 0.577 (not 0), so the relaxed gates
    lean towards keeping: P(v + n > 0) = 1 - exp(-exp(v)), 0.63 at v = 0, where logistic noise
    would give sigmoid(v)."""
    margin = torch.finfo(like.dtype).eps  # keeps -log(-log(u)) finite
    u = torch.rand(size, generator=generator, device=like.device, dtype=like.dtype).clamp(margin, 1 - margin)
    return -torch.log(-torch.log(u))


def round_ste(gate: Tensor) -> Tensor:
    """round(gate) in the forward pass, identity gradient in the backward pass (STE, Sec. 3.6).
    Exact for gates in [0, 1]: g + (round(g) - g) is 0 or 1 without rounding error."""
    return gate + (torch.round(gate) - gate).detach()


def kept_units(gate: Tensor) -> Tensor:
    """1^T round(gate) of Eq. 12: the number of kept units, with the STE gradient."""
    return round_ste(gate).sum()


class ExpertRoutingAgent(nn.Module):
    """h_ERA(z; beta) (Eq. 6, supp. Table 1): z -> bidirectional GRU -> LayerNorm -> ReLU -> Dense_k.

    One input vector z_k and one weight-normed Dense_k per output head, L_i + 1 heads per expert
    (L_i when it has no depth layer), all experts' heads in one GRU sequence so that it can model
    interactions between layers and between experts.
    """

    def __init__(self, experts: Sequence[ExpertShape], input_dim: int = 128, hidden: int = 256,
                 seed: int = 0, tau: float = 0.4, eps: float = EPS):
        super().__init__()
        if hidden % 2:
            raise ValueError(f"hidden={hidden} must be even: it is the two GRU directions together")
        self.experts = tuple(experts)
        self.tau, self.eps = tau, eps
        sizes = [c for shape in self.experts for c in shape.outputs]
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("z", torch.randn(1, len(sizes), input_dim, generator=generator))
        with seeded_global_rng(seed):  # seeded parameters, global RNG left as it was
            # hidden // 2 per direction: Table 1's GRU(128, 256) feeds Dense_k(256, C_k).
            self.gru = nn.GRU(input_dim, hidden // 2, batch_first=True, bidirectional=True)
            # LayerNorm as in the authors' hypernetwork code; Table 1 says WeightNorm, which does
            # not fit nn.GRU's flat weight buffers.
            self.norm = nn.LayerNorm(hidden)
            self.dense = nn.ModuleList(weight_norm(nn.Linear(hidden, c)) for c in sizes)

    def outputs(self) -> list[Tensor]:
        """o_k for every head of every expert, in sequence order."""
        h, _ = self.gru(self.z)
        h = torch.relu(self.norm(h[0]))
        return [dense(h[k]) for k, dense in enumerate(self.dense)]

    def logits(self) -> list[list[Tensor]]:
        """v per head, grouped by expert: width layers in SubnetGates order, then depth in rank order."""
        flat = [importance_logits(o, self.eps) for o in self.outputs()]
        grouped, start = [], 0
        for shape in self.experts:
            end = start + len(shape.outputs)
            grouped.append(flat[start:end])
            start = end
        return grouped

    def forward(self, generator: torch.Generator) -> list[SubnetGates]:
        """Soft gates sigmoid((v + n) / tau), n ~ Gumbel(0, 1) (Eq. 7, 9), one SubnetGates per expert;
        ``generator`` (on the agent's device) draws n, one draw per unit in sequence order."""
        logits = self.logits()
        flat = torch.cat([v for per_expert in logits for v in per_expert])
        noise = gumbel_noise(flat.numel(), generator, flat)
        soft = torch.sigmoid((flat + noise) / self.tau)
        return [self._subnet(shape, heads) for shape, heads in zip(self.experts, _split_like(soft, logits))]

    @torch.no_grad()
    def hard_gates(self) -> list[SubnetGates]:
        """The final architecture: gate = 1 where v > 0 (sigmoid(v / tau) > 0.5, no noise), else 0."""
        return [self._subnet(shape, [(v > 0).to(v.dtype) for v in heads])
                for shape, heads in zip(self.experts, self.logits())]

    @torch.no_grad()
    def architecture(self) -> list[dict]:
        """Per expert: kept groups per ResBlock, kept heads per attention layer, depth-layer flags.

        The keep probabilities fall with importance, so each layer keeps a prefix of its units
        (the count defines it) and at least its first unit (p_1 = 1)."""
        result = []
        for shape, heads in zip(self.experts, self.logits()):
            counts = [_prefix_length(v > 0) for v in heads]
            n_blocks, n_widths = len(shape.blocks), len(shape.widths)
            kept_depth = set(shape.ranking[:counts[n_widths]]) if shape.depth else set()
            result.append({"groups": counts[:n_blocks], "heads": counts[n_blocks:n_widths],
                           "depth": [j in kept_depth for j in range(shape.depth)]})
        return result

    def _subnet(self, shape: ExpertShape, heads: list[Tensor]) -> SubnetGates:
        """Per-head vectors of one expert -> SubnetGates; depth goes from rank order to index order."""
        n_blocks, n_widths = len(shape.blocks), len(shape.widths)
        depth: list[Tensor | None] = [None] * shape.depth
        if shape.depth:
            for k, j in enumerate(shape.ranking):
                depth[j] = heads[n_widths][k]
        return SubnetGates(blocks=list(heads[:n_blocks]), heads=list(heads[n_blocks:n_widths]), depth=depth)


def _split_like(flat: Tensor, grouped: list[list[Tensor]]) -> list[list[Tensor]]:
    """Cut a concatenation back into the nested shapes it came from."""
    pieces = iter(flat.split([v.numel() for per_expert in grouped for v in per_expert]))
    return [[next(pieces) for _ in per_expert] for per_expert in grouped]


def _prefix_length(keep: Tensor) -> int:
    count = int(keep.sum())
    if count < 1 or not bool(keep[:count].all()):
        raise AssertionError(f"kept units are not a non-empty prefix: {keep.tolist()}")
    return count


def _layer_macs(gate: Tensor | None, units: int, fixed: float, per_unit: float,
                depth_gate: Tensor | None) -> Tensor | float:
    """depth_gate * (fixed + kept units * MACs per unit) for one layer (Eq. 12-13)."""
    kept = units if gate is None else kept_units(gate)
    macs = fixed + kept * per_unit
    return macs if depth_gate is None else round_ste(depth_gate) * macs


def expert_macs(gates: SubnetGates, table: MacsTable) -> Tensor:
    """T^(i)(u, v): MACs of one expert's sub-network by the formula of MacsTable (Eq. 12-13),
    rounded gates with the straight-through estimator. None gates count as whole layers."""
    if (len(gates.blocks), len(gates.heads), len(gates.depth)) != (
            len(table.block_groups), len(table.heads), table.depth_layers):
        raise ValueError("gates and MACs table describe different networks")

    def depth_of(index: int | None) -> Tensor | None:
        return None if index is None else gates.depth[index]

    total: Tensor | float = table.fixed
    for b, gate in enumerate(gates.blocks):
        total = total + _layer_macs(gate, table.block_groups[b], table.block_fixed[b],
                                    table.group_macs[b], depth_of(table.block_depth[b]))
    for a, gate in enumerate(gates.heads):
        total = total + _layer_macs(gate, table.heads[a], table.head_fixed[a],
                                    table.head_macs[a], depth_of(table.head_depth[a]))
    return torch.as_tensor(total, dtype=torch.get_default_dtype()) if not torch.is_tensor(total) else total


def mixture_macs(gates_per_expert: Sequence[SubnetGates], tables: Sequence[MacsTable],
                 interval_sizes: Sequence[int]) -> Tensor:
    """T(u, v) = sum_i |I_i| / sum_k |I_k| * T^(i) (Eq. 14): per-step MACs under a linear schedule."""
    if not len(gates_per_expert) == len(tables) == len(interval_sizes):
        raise ValueError("one gate set, MACs table and interval size per expert")
    total_steps = sum(interval_sizes)
    return sum(size / total_steps * expert_macs(g, t)
               for g, t, size in zip(gates_per_expert, tables, interval_sizes))


def macs_regulariser(x: Tensor, y: Tensor | float) -> Tensor:
    """R(x, y) = log(max(x, y) / min(x, y)) (Eq. 15), written as |log x - log y| (the same value)."""
    y = torch.as_tensor(y, dtype=x.dtype, device=x.device)
    return torch.abs(torch.log(x) - torch.log(y))


def era_objective(interval_losses: Sequence[Tensor], macs: Tensor,
                  budget: float) -> tuple[Tensor, Tensor, Tensor]:
    """J(T_d) of Eq. 15: (total, mean interval loss of the gated experts, R(macs, T_d))."""
    loss_term = torch.stack(list(interval_losses)).mean()
    macs_term = macs_regulariser(macs, budget)
    return loss_term + macs_term, loss_term, macs_term
