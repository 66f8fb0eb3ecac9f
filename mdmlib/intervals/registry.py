"""The interval-method registry: one entry per way of choosing the experts' intervals.

An entry names the function that runs the method (``"module:function"``, imported only
when the method runs, so this module and the DAG stay torch-free), the inputs the
pipeline must give it, whether it wants a GPU, and the dataclass of its settings (the
config block ``intervals.<name>``). A new method is one module with a
``select_<name>(context)`` function (``mdmlib.intervals.selection``), one entry here,
and its schema block in ``schemas/config.schema.yaml``; a plug-in (config key
``plugins``) calls ``register_method`` instead and may carry its schema block along.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from mdmlib.core.targets import resolve

INPUTS = ("train", "model")  # the training split; a baseline snapshot (at settings.checkpoint_fraction)


@dataclass(frozen=True)
class IntervalMethod:
    name: str
    function: str  # "package.module:function", called with a SelectionContext, returns an IntervalChoice
    inputs: tuple[str, ...] = ()  # of INPUTS
    gpu: bool = False  # the rule asks for a GPU slot
    settings: type | None = None  # dataclass of intervals.<name>; None: the method has no settings
    # Checks that need the number of intervals n: (settings, n) -> an error naming its key, or None.
    check: Callable[[Any, int], str | None] | None = None
    schema: dict | None = None  # a plug-in's schema block for intervals.<name> (built-ins: the schema file)

    def __post_init__(self):
        unknown = sorted(set(self.inputs) - set(INPUTS))
        if unknown:
            raise ValueError(f"interval method {self.name!r}: unknown inputs {unknown}; expected some of {INPUTS}")
        if ":" not in self.function:
            raise ValueError(f"interval method {self.name!r}: function {self.function!r} is not 'module:function'")
        if "model" in self.inputs and (self.settings is None or not hasattr(self.settings(), "checkpoint_fraction")):
            raise ValueError(f"interval method {self.name!r} reads a model: its settings need checkpoint_fraction")

    def run(self, context) -> Any:
        return resolve(self.function)(context)


# ---------------------------------------------------------------- the built-in methods' settings


@dataclass(frozen=True)
class AttentionSettings:  # MDM Sec. 4.2, Eq. 3
    checkpoint_fraction: float = 0.1  # analyse a baseline trained for this share of its budget (paper: 10%)
    images: int = 100  # DDIM trajectories averaged (1000 in the paper)
    steps: int = 50  # DDIM steps
    batch_size: int = 100


@dataclass(frozen=True)
class GradientSettings:  # DiffPruning Sec. 3.3, supplementary Eq. 1-3
    checkpoint_fraction: float = 1.0  # the trained baseline
    grid: int = 20  # timesteps whose loss gradients are compared
    batch_size: int = 64  # the fixed batch of training images (same images and noise for every t)


@dataclass(frozen=True)
class OptimalDenoiserSettings:  # multi-stage supplementary Eq. 20-21, Algorithm 2
    grid: int = 50  # timesteps of the search grid
    probes: int = 64  # probe images whose denoiser outputs are compared
    table_n: tuple[int, ...] = (2, 3, 4, 5)  # interval counts reported in its table


@dataclass(frozen=True)
class SnrSettings:  # TDC Eq. 2-5
    min_flops_ratio: float = 0.5  # k: the easiest timestep gets k*F FLOPs


def _at_least(key: str, value: int, least: int) -> str | None:
    return f"config key '{key}': {value} is too few for {least} intervals" if value < least else None


METHODS: dict[str, IntervalMethod] = {}


def register_method(method: IntervalMethod) -> IntervalMethod:
    """Add ``method`` (a plug-in's, or a built-in below); a name is registered once."""
    if method.name in METHODS and METHODS[method.name] != method:
        raise ValueError(f"interval method {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


def interval_method(name: str) -> IntervalMethod:
    if name not in METHODS:
        raise ValueError(f"unknown interval method {name!r}; registered: {', '.join(METHODS)}")
    return METHODS[name]


def method_names() -> tuple[str, ...]:
    """Registered methods in registration order (the built-ins first, as tables list them)."""
    return tuple(METHODS)


for _method in (
    IntervalMethod("paper", "mdmlib.intervals.fixed:select_paper"),
    IntervalMethod("attention", "mdmlib.intervals.attention:select_attention", inputs=("model",), gpu=True,
                   settings=AttentionSettings,
                   check=lambda s, n: _at_least("intervals.attention.steps", s.steps, 2 * n)),  # 2 points a segment
    IntervalMethod("gradient", "mdmlib.intervals.gradient:select_gradient", inputs=("train", "model"), gpu=True,
                   settings=GradientSettings, check=lambda s, n: _at_least("intervals.gradient.grid", s.grid, n)),
    IntervalMethod("optimal_denoiser", "mdmlib.intervals.optimal_denoiser:select_optimal_denoiser",
                   inputs=("train",), settings=OptimalDenoiserSettings,
                   check=lambda s, n: _at_least("intervals.optimal_denoiser.grid", s.grid, max(n, *s.table_n))),
    IntervalMethod("snr", "mdmlib.intervals.snr:select_snr", settings=SnrSettings),
    IntervalMethod("uniform", "mdmlib.intervals.fixed:select_uniform"),
):
    register_method(_method)
