"""Metric cost: time of FID, sFID, precision and recall, and the peak memory of precision/recall.

Times use the default feature space (the classifier CNN of ``mdmlib.metrics.features``, randomly
initialised: its cost does not depend on its weights) on random uint8 images. Peak memory is
the growth of the process's resident set during one ``precision_recall`` call, read from
Linux's high-water mark after resetting it (``/proc/self/clear_refs``): it sees every
allocation, torch's included, which tracemalloc does not.
"""
from __future__ import annotations

import ctypes
import gc
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from benchmarks.timing import figure
from mdmlib.config import RunConfig
from mdmlib.metrics.features import FeatureNet, extract_features
from mdmlib.metrics.fid import feature_statistics, frechet_distance, precision_recall


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def metric_times(cfg: RunConfig, channels: int, n: int, repeats: int, seed: int = 0) -> dict:
    """Seconds of each metric for ``n`` generated against ``n`` reference images (median over repeats)."""
    mc, res = cfg.metrics, cfg.data.resolution
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FeatureNet(mc.feature_net, channels, res, num_classes=10).eval()
    rng = np.random.default_rng(seed)
    real, fake = (rng.integers(0, 256, (n, channels, res, res), dtype=np.uint8) for _ in range(2))
    times: dict[str, list[float]] = {k: [] for k in ("features", "fid", "sfid", "precision_recall")}
    for _ in range(repeats):
        (feats, t) = _timed(lambda: [extract_features(net, x) for x in (real, fake)])
        times["features"].append(t)
        (real_pool, real_spatial), (fake_pool, fake_spatial) = feats
        for key, a, b in (("fid", real_pool, fake_pool), ("sfid", real_spatial, fake_spatial)):
            times[key].append(_timed(lambda: frechet_distance(*feature_statistics(a), *feature_statistics(b)))[1])
        pr = lambda: precision_recall(real_pool, fake_pool, k=mc.pr_k, block_size=mc.block_size)  # noqa: E731
        times["precision_recall"].append(_timed(pr)[1])
    total = [sum(v[i] for v in times.values()) for i in range(repeats)]
    labels = {"features": f"feature extraction, {n} + {n} images", "fid": "FID (both sets' statistics + Frechet distance)",
              "sfid": "sFID (both sets' statistics + Frechet distance)", "precision_recall": f"precision and recall (k={mc.pr_k})"}
    return {"figures": [figure(labels[k], v, "s") for k, v in times.items()] + [figure("all four", total, "s")],
            "n": n, "pool_dim": int(real_pool.shape[1]), "spatial_dim": int(real_spatial.shape[1]),
            "feature_network": "classifier CNN, random init", "block_size": mc.block_size, "repeats": repeats}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def release_freed_memory() -> None:
    """Give memory that was freed but kept by the allocator back to the OS. glibc keeps freed
    blocks for reuse; a later run would then be served from them without growing the
    resident set, and its peak would read as zero."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to release
        pass


def peak_memory_increase(fn: Callable[[], object]) -> int | None:
    """Bytes the resident set grew at its peak while ``fn`` ran; None where Linux's counters are missing."""
    release_freed_memory()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
        before = _status_kib("VmRSS")
    except (OSError, KeyError):
        return None
    fn()
    return (_status_kib("VmHWM") - before) * 1024


def precision_recall_memory(n: int, dim: int, block_sizes: tuple[int, int], small_n: int, k: int = 3,
                            seed: int = 0) -> dict:
    """Peak memory of precision_recall at n vs n, and at small_n with two block sizes.

    Bounded by the block means: the peak is about one block's float64 distances (8 b^2
    bytes) whatever N, so it stays put from small_n to n and drops ~4x when b halves; an
    N x N matrix would grow (n / small_n)^2-fold instead.
    """
    rng = np.random.default_rng(seed)
    cases = [(n, block_sizes[0]), (small_n, block_sizes[0]), (small_n, block_sizes[1])]
    rows = []
    for size, block in cases:
        real, fake = rng.standard_normal((size, dim)), rng.standard_normal((size, dim))
        start = time.perf_counter()
        peak = peak_memory_increase(lambda: precision_recall(real, fake, k=k, block_size=block))
        rows.append({"n": size, "block_size": block, "peak_bytes": peak, "seconds": time.perf_counter() - start,
                     "block_bytes": 8 * min(block, size) ** 2, "n_squared_bytes": 8 * size**2})
    result = {"cases": rows, "dim": dim, "k": k, "figures": []}
    if any(r["peak_bytes"] is None for r in rows):
        result["message"] = "peak memory not measured: needs Linux's /proc/self/clear_refs"
        return result
    if any(r["peak_bytes"] == 0 for r in rows):  # blocks served from memory the process already held
        result["message"] = "peak memory not measured: blocks too small to grow the resident set"
        return result
    big, small, half = rows
    result["figures"] = [
        figure(f"peak MiB, N={n} vs {n}, block {block_sizes[0]}", [big["peak_bytes"] / 2**20], "MiB"),
        figure("  / one block's float64 distances (8 b^2)", [big["peak_bytes"] / big["block_bytes"]]),
        figure("  / an N x N float64 matrix (8 N^2)", [big["peak_bytes"] / big["n_squared_bytes"]]),
        figure(f"peak at N={n} / peak at N={small_n} (N^2 would give {(n / small_n) ** 2:.2f})",
               [big["peak_bytes"] / small["peak_bytes"]], target=("<=", 1.25)),
        figure(f"peak at block {block_sizes[0]} / block {block_sizes[1]} (N={small_n}; b^2 gives "
               f"{(block_sizes[0] / block_sizes[1]) ** 2:.2f})", [small["peak_bytes"] / half["peak_bytes"]]),
    ]
    return result
