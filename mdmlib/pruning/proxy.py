"""TDC's proxy-based pruning (Sec. II-C, Eq. 9-12): an iterative search over pruning schemes
with a memory bank.

Each round a proposer reads a structured description (the architecture with per-layer widths
and MACs, the group's timesteps and FLOPs limit, the memory bank of past schemes with their
losses) and returns K schemes meeting the limit; each is applied (which channels inside a layer:
by L1 magnitude; how many: the scheme), recovered for a few steps on the group's timesteps and
scored by the group's held-out loss; the bank is updated (Eq. 12). After R rounds the scheme
with the lowest loss is kept. The paper's proposer is GPT-4; the default here is an offline
search that learns from the bank (``MutationProposer``); ``mdmlib.pruning.chat`` sends the same
description to an OpenAI-compatible endpoint.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Callable, Protocol

from mdmlib.pruning.scheme import PruningScheme, UNetShape, fit_to_limit, scheme_widths


@dataclass(frozen=True)
class BankEntry:
    """One evaluated scheme (Eq. 12: the memory bank holds schemes with their losses)."""

    round: int
    candidate: int
    proposer: str
    scheme: dict  # PruningScheme.to_dict()
    widths: dict
    macs_ratio: float  # of the unpruned model's MACs
    loss: float  # the group's held-out epsilon loss after the short recovery


@dataclass(frozen=True)
class SearchProblem:
    """What a proposer is told: the unpruned shape, the MACs of a scheme, the limit, the group."""

    shape: UNetShape
    layer_names: tuple[str, ...]  # one per ResBlock then per attention layer
    full_macs: int
    limit_macs: float
    interval: tuple[int, int]  # (lo, hi]: the group's timesteps
    count: Callable[[PruningScheme], int]

    def fit(self, scheme: PruningScheme) -> PruningScheme:
        return fit_to_limit(scheme, self.limit_macs, self.count, self.shape)

    def description(self, bank: list[BankEntry], candidates: int) -> dict:
        """The structured description (the prompt's content): plain data."""
        blocks = len(self.shape.block_widths)
        layers = [{"layer": name, "kind": "resblock hidden width", "width": w, "norm_group_size": s}
                  for name, w, s in zip(self.layer_names[:blocks], self.shape.block_widths, self.shape.group_sizes)]
        layers += [{"layer": name, "kind": "attention heads", "heads": h}
                   for name, h in zip(self.layer_names[blocks:], self.shape.attention_heads)]
        return {"task": f"choose {candidates} structured pruning schemes for a diffusion U-Net that will denoise "
                        f"only timesteps ({self.interval[0]}, {self.interval[1]}]",
                "layers": layers, "full_macs": self.full_macs, "macs_limit": int(self.limit_macs),
                "macs_limit_ratio": round(self.limit_macs / self.full_macs, 4),
                "memory_bank": [{"scheme": e.scheme, "macs_ratio": e.macs_ratio, "loss": e.loss} for e in bank],
                "answer_format": "a JSON list of objects {\"block_keep\": [one ratio in (0, 1] per resblock], "
                                 "\"head_keep\": [one ratio in (0, 1] per attention layer]}; lower loss is better"}


class Proposer(Protocol):
    name: str

    def propose(self, problem: SearchProblem, bank: list[BankEntry], k: int) -> list[PruningScheme]: ...


class MutationProposer:
    """Offline proposer: round one tries the uniform scheme and random variations of it; later
    rounds mutate the best schemes of the bank (log-normal noise on every ratio), each fitted to
    the limit, so what scored well is explored further."""

    name = "offline"

    def __init__(self, seed: int = 0, sigma: float = 0.35, parents: int = 2):
        self.rng, self.sigma, self.parents = random.Random(seed), sigma, parents

    def mutate(self, scheme: PruningScheme) -> PruningScheme:
        def jitter(values):
            return tuple(min(1.0, max(1e-3, v * math.exp(self.rng.gauss(0, self.sigma)))) for v in values)
        return PruningScheme(jitter(scheme.block_keep), jitter(scheme.head_keep))

    def propose(self, problem: SearchProblem, bank: list[BankEntry], k: int) -> list[PruningScheme]:
        if bank:
            best = sorted(bank, key=lambda e: e.loss)[:self.parents]
            parents = [PruningScheme.from_dict(e.scheme, problem.shape) for e in best]
            starts = [self.mutate(parents[i % len(parents)]) for i in range(k)]
        else:
            uniform = PruningScheme.uniform(problem.shape, 1.0)
            starts = [uniform] + [self.mutate(uniform) for _ in range(k - 1)]
        return [problem.fit(s) for s in starts]


def proxy_search(problem: SearchProblem, proposer: Proposer, evaluate: Callable[[PruningScheme], float],
                 rounds: int, candidates: int, log: Callable[[str], None] = print
                 ) -> tuple[BankEntry, list[BankEntry]]:
    """R rounds of K proposals, each evaluated and banked; the best entry (lowest loss) and the bank."""
    if rounds < 1 or candidates < 1:
        raise ValueError(f"the proxy search needs at least one round and one candidate, got {rounds} x {candidates}")
    bank: list[BankEntry] = []
    for r in range(1, rounds + 1):
        schemes = proposer.propose(problem, bank, candidates)
        for c, scheme in enumerate(schemes, 1):
            macs = problem.count(scheme)
            if macs > problem.limit_macs:
                raise ValueError(f"proposer {proposer.name!r} gave a scheme over the limit "
                                 f"({macs} > {int(problem.limit_macs)} MACs): {scheme.to_dict()}")
            loss = float(evaluate(scheme))
            bank.append(BankEntry(r, c, proposer.name, scheme.to_dict(), scheme_widths(problem.shape, scheme),
                                  round(macs / problem.full_macs, 4), loss))
            log(f"proxy round {r}/{rounds}, candidate {c}/{len(schemes)}: MACs {macs / problem.full_macs:.3f} F, "
                f"loss {loss:.5f} (best so far {min(e.loss for e in bank):.5f})")
    return min(bank, key=lambda e: e.loss), bank


def bank_rows(bank: list[BankEntry]) -> list[dict]:
    return [asdict(e) for e in bank]
