"""Side-by-side timings: each figure is a ratio of two variants measured in alternation.

Absolute times drift on shared machines; alternating the variants and reporting the
median ratio with its spread keeps the comparison honest.
"""
from __future__ import annotations

import operator
import os
import statistics
from typing import Callable, Sequence

TARGET_OPS = {">=": operator.ge, "<=": operator.le}


def one_thread_env() -> dict[str, str]:
    """The environment of a one-thread job process, as Snakemake sets it for ``threads: 1``."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def figure(name: str, values: Sequence[float], unit: str = "", target: tuple[str, float] | None = None) -> dict:
    """One reported number: median and range over its repeats, and whether the median meets ``target``."""
    values = [float(v) for v in values]
    median = statistics.median(values)
    met = None if target is None else bool(TARGET_OPS[target[0]](median, target[1]))
    return {"figure": name, "unit": unit, "median": median, "min": min(values), "max": max(values),
            "repeats": len(values), "target": None if target is None else f"{target[0]} {target[1]:g}",
            "met": met, "values": values}


def paired_ratio(numerator: Callable[[], float], denominator: Callable[[], float], repeats: int) -> dict:
    """Run both variants ``repeats`` times in alternation; ratio = numerator / denominator times."""
    ratios, num_times, den_times = [], [], []
    for _ in range(repeats):
        n, d = numerator(), denominator()
        num_times.append(n)
        den_times.append(d)
        ratios.append(n / d)
    return {"ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "numerator_median_s": statistics.median(num_times), "denominator_median_s": statistics.median(den_times),
            "repeats": repeats, "ratios": ratios, "numerator_s": num_times, "denominator_s": den_times}
