"""The result every interval-selection method writes: boundaries plus the numbers behind them.

Boundaries are interior cut points in the paper's integer timesteps t = 1..T: cut
points ``b_1 < ... < b_{n-1}`` give the intervals ``(0, b_1], (b_1, b_2], ..., (b_{n-1}, T]``,
ordered from clean (t near 0) to noisy, exactly as ``experts.Interval`` reads them.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mdmlib.core.intervals import Interval
from mdmlib.core.io import atomic_write_text

FORMAT = "mdmlib.interval_choice/v1"


class IntervalFileError(ValueError):
    pass


@dataclass(frozen=True)
class IntervalChoice:
    method: str  # paper | attention | gradient | optimal_denoiser | snr | uniform
    timesteps: int  # T
    boundaries: tuple[int, ...]  # interior cut points, strictly ascending, each in [1, T-1]
    details: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable numbers behind the choice

    def __post_init__(self):
        b = [int(x) for x in self.boundaries]
        if list(self.boundaries) != b or b != sorted(set(b)) or any(not 0 < x < self.timesteps for x in b):
            raise ValueError(f"{self.method}: boundaries {list(self.boundaries)} are not strictly ascending "
                             f"integers in [1, {self.timesteps - 1}]")
        object.__setattr__(self, "boundaries", tuple(b))

    @property
    def n(self) -> int:
        return len(self.boundaries) + 1

    @property
    def intervals(self) -> list[Interval]:
        edges = [0, *self.boundaries, self.timesteps]
        return [Interval(lo, hi) for lo, hi in zip(edges, edges[1:])]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "method": self.method, "n": self.n, "timesteps": self.timesteps,
                "boundaries": list(self.boundaries),
                "intervals": [i.to_list() for i in self.intervals], "details": self.details}


def write_choice(choice: IntervalChoice, path: str | Path) -> None:
    """Atomic JSON write; non-finite numbers are refused rather than written as NaN."""
    text = json.dumps(choice.to_dict(), indent=2, allow_nan=False, default=_plain)
    atomic_write_text(path, text + "\n")


def read_choice(path: str | Path) -> IntervalChoice:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise IntervalFileError(f"interval file {path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IntervalFileError(f"interval file {path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise IntervalFileError(f"interval file {path}: expected format {FORMAT!r}")
    try:
        choice = IntervalChoice(data["method"], int(data["timesteps"]), tuple(data["boundaries"]),
                                data.get("details", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise IntervalFileError(f"interval file {path}: {exc}") from None
    if data.get("n") != choice.n or data.get("intervals") != [i.to_list() for i in choice.intervals]:
        raise IntervalFileError(f"interval file {path}: n or intervals disagree with its boundaries")
    return choice


def _plain(obj: Any) -> Any:
    """numpy / torch scalars and arrays -> plain JSON values."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError("non-finite number in interval details")
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")
