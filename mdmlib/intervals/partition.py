"""Exact contiguous partitioning by dynamic programming, shared by the interval methods that
search for cut points (attention's segment fit, gradient alignment's J, the optimal denoiser)."""
from __future__ import annotations

import numpy as np


def best_partition(cost: np.ndarray, n: int) -> tuple[list[int], float]:
    """Split points 0..m into ``n`` non-empty contiguous blocks minimising the sum of
    ``cost[i, j]`` (the cost of the block i..j-1; ``inf`` forbids a block).

    O(n m^2) and exact; ties go to the earliest start. Returns the edges ``[0, e_1, ..., m]``
    and the minimum (``inf`` when no partition is allowed).
    """
    m = cost.shape[0] - 1
    best = np.full((n + 1, m + 1), np.inf)
    start = np.zeros((n + 1, m + 1), dtype=int)
    best[0, 0] = 0.0
    for k in range(1, n + 1):
        for j in range(1, m + 1):
            total = best[k - 1, :j] + cost[:j, j]
            start[k, j] = int(np.argmin(total))
            best[k, j] = total[start[k, j]]
    edges = [m]
    for k in range(n, 0, -1):
        edges.append(int(start[k, edges[-1]]))
    return edges[::-1], float(best[n, m])
