"""The registry of pruning importance criteria: name -> how channels and heads are scored.

Torch-free (the config check reads the names); each entry names its scorer as
"module:function", imported on first use. The built-in ones are torch-pruning's importances
(``mdmlib.pruning.importance``); a plug-in adds its own with ``register_criterion``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Criterion:
    name: str
    importance: str  # "module:function" returning a torch-pruning Importance object
    # what gradients it reads: None (weights only), "batch" (one batch, t uniform in the group) or
    # "ascending" (Diff-Pruning: t rising through the group, stopped once the loss falls below
    # threshold x its largest value)
    gradients: str | None
    description: str
    # how attention heads are scored (torch-pruning does not score heads of this U-Net): "random",
    # "magnitude" (L1 of a head's weights), "taylor" (|sum w g| over a head) or "taylor_sum" (sum |w g|)
    heads: str = "magnitude"


CRITERIA: dict[str, Criterion] = {}
HEAD_SCORES = ("random", "magnitude", "taylor", "taylor_sum")
PROXY = "proxy"  # TDC's proxy-based pruning: a search over schemes, not a criterion (mdmlib.pruning.proxy)


def register_criterion(criterion: Criterion) -> Criterion:
    if criterion.gradients not in (None, "batch", "ascending"):
        raise ValueError(f"criterion {criterion.name!r}: gradients must be None, 'batch' or 'ascending'")
    if criterion.heads not in HEAD_SCORES or (criterion.heads.startswith("taylor") and not criterion.gradients):
        raise ValueError(f"criterion {criterion.name!r}: heads must be one of {HEAD_SCORES} (taylor ones need gradients)")
    if criterion.name == PROXY or (criterion.name in CRITERIA and CRITERIA[criterion.name] != criterion):
        raise ValueError(f"pruning criterion {criterion.name!r} is already registered")
    CRITERIA[criterion.name] = criterion
    return criterion


def criterion(name: str) -> Criterion:
    if name not in CRITERIA:
        raise ValueError(f"unknown pruning criterion {name!r}; registered: {', '.join(CRITERIA)} (and {PROXY!r})")
    return CRITERIA[name]


def pruning_methods() -> tuple[str, ...]:
    """Every name ``tdc.pruning`` accepts: the criteria and the proxy search."""
    return (*CRITERIA, PROXY)


_TP = "mdmlib.pruning.importance"
register_criterion(Criterion("random", f"{_TP}:random_importance", None, "random scores (a control)", "random"))
register_criterion(Criterion("magnitude", f"{_TP}:magnitude_importance", None, "L1 norm of the weights"))
register_criterion(Criterion("taylor", f"{_TP}:taylor_importance", "batch",
                             "first-order Taylor |sum w g| on the group's timesteps", "taylor"))
register_criterion(Criterion("diff_pruning", f"{_TP}:diff_pruning_importance", "ascending",
                             "Diff-Pruning: Taylor sum |w g| accumulated over the group's informative timesteps",
                             "taylor_sum"))
