"""FID, sFID and improved precision/recall with the ADM evaluator's definitions.

The formulas follow guided-diffusion's ``evaluations/evaluator.py`` (see
``shared/notes/METRICS.md``). The features come from the extractor that ``metrics.features``
picks (``mdmlib.metrics.reference.make_extractor``): the small CNN of ``mdmlib.metrics.features``
(the offline default) or Inception-v3 (``mdmlib.metrics.inception``). As in EDM's ``fid.py``
there are two steps: the reference step (``mdmlib.metrics.reference``) and the calculation
step (``mdmlib.metrics.series``); this module holds the formulas both use.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import linalg

# ----------------------------------------------------------------------------- Frechet distance


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (rows are samples) in float64, as the ADM evaluator computes them."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"feature_statistics: need an N x D array with N >= 2, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Frechet distance between two Gaussians, the ADM / TTUR form.

    |mu1-mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr(sqrtm(sigma1 sigma2)). When the square
    root is not finite (singular product), ``eps * I`` is added to both covariances and
    it is retried; a complex root is accepted (real part kept) only while every
    diagonal imaginary part is within 1e-3.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(
            f"frechet_distance: shapes differ: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}"
        )
    diff = mu1 - mu2
    with warnings.catch_warnings():
        # SciPy warns "Matrix is singular" for the rank-deficient covariances of
        # small sample sets; the non-finite check below is what decides.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            warnings.warn(f"frechet_distance: singular product; adding {eps} to the covariance diagonals")
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            largest = np.max(np.abs(covmean.imag))
            raise ValueError(f"frechet_distance: imaginary component {largest} in sqrtm(sigma1 sigma2)")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


# ----------------------------------------------------------------------------- precision / recall
# Distances are squared Euclidean (the ADM evaluator compares squared distances with
# squared radii) and computed in float64: the features are small (tens to a few
# thousand dimensions), so the cost is minor, and |u|^2 - 2 u.v + |v|^2 in float32
# cancels to errors of ~1e-7 |u|^2, which can flip a d^2 <= r^2 decision for points
# on a ball's boundary and make blocked and unblocked results disagree. (The ADM
# evaluator itself uses float16 distances when they are finite, float32 otherwise; the
# difference to float64 only moves points that sit within rounding of a boundary.)
# The self-distance is computed by the same formula, so it is 0 up to ~1e-16 |x|^2
# before the clamp, and still sorts first.


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances (len(a) x len(b)), clamped at 0 against rounding.

    In place after the matrix product, so a 10000 x 10000 block costs its 800 MB once.
    """
    d2 = (a @ b.T).mul_(-2.0)
    return d2.add_((a * a).sum(1)[:, None]).add_((b * b).sum(1)[None, :]).clamp_min_(0.0)


def _as_float64(features: np.ndarray) -> torch.Tensor:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"expected an N x D feature array, got shape {features.shape}")
    return torch.from_numpy(features)


def knn_radii(features: np.ndarray, k: int = 3, block_size: int = 10000) -> np.ndarray:
    """Squared distance of every point to its k-th nearest neighbour in the same set.

    k semantics (the ADM evaluator's): sort a point's squared distances to all N points
    of its own set, the point itself included; the self-distance 0 is entry 0 of the
    sorted row and the radius is entry k. So k=3 is the 3rd nearest *other* point, and
    an exact duplicate counts as a neighbour at distance 0. Needs k < N.

    Rows and columns both go in blocks of ``block_size``: each row keeps a running list of
    its k+1 smallest distances, merged with each column block's k+1 smallest, so memory
    is one block_size x block_size block, never N x N.
    """
    x = _as_float64(features)
    n = len(x)
    if not 1 <= k < n:
        raise ValueError(f"knn_radii: need 1 <= k < N, got k={k}, N={n}")
    radii = torch.empty(n, dtype=torch.float64)
    for r0 in range(0, n, block_size):
        rows = x[r0 : r0 + block_size]
        smallest = torch.full((len(rows), 0), float("inf"), dtype=torch.float64)
        for c0 in range(0, n, block_size):
            block = _squared_distances(rows, x[c0 : c0 + block_size])
            block_smallest = torch.topk(block, min(k + 1, block.shape[1]), dim=1, largest=False, sorted=False).values
            merged = torch.cat([smallest, block_smallest], dim=1)
            smallest = torch.topk(merged, min(k + 1, merged.shape[1]), dim=1, largest=False, sorted=False).values
            del block  # else the next block is allocated while this one is alive: two blocks at peak
        radii[r0 : r0 + len(rows)] = smallest.max(dim=1).values  # the (k+1)-th smallest = entry k
    return radii.numpy()


def precision_recall(
    real_features: np.ndarray, fake_features: np.ndarray, k: int = 3, block_size: int = 10000
) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with the ADM evaluator's rules.

    precision = fraction of fake samples inside at least one real ball (d^2 <= r^2),
    recall = fraction of real samples inside at least one fake ball; radii from
    :func:`knn_radii` with the same k. One blocked distance pass serves both.
    """
    real, fake = _as_float64(real_features), _as_float64(fake_features)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"precision_recall: feature sizes differ: real {real.shape[1]}, fake {fake.shape[1]}")
    real_r2 = torch.from_numpy(knn_radii(real_features, k, block_size))
    fake_r2 = torch.from_numpy(knn_radii(fake_features, k, block_size))
    fake_in_real = torch.zeros(len(fake), dtype=torch.bool)
    real_in_fake = torch.zeros(len(real), dtype=torch.bool)
    for f0 in range(0, len(fake), block_size):
        f1 = min(f0 + block_size, len(fake))
        for r0 in range(0, len(real), block_size):
            r1 = min(r0 + block_size, len(real))
            d2 = _squared_distances(fake[f0:f1], real[r0:r1])
            fake_in_real[f0:f1] |= (d2 <= real_r2[None, r0:r1]).any(dim=1)
            real_in_fake[r0:r1] |= (d2 <= fake_r2[f0:f1, None]).any(dim=0)
            del d2  # one block at peak, not two
    return float(fake_in_real.double().mean()), float(real_in_fake.double().mean())


# ----------------------------------------------------------------------------- results


# ----------------------------------------------------------------------------- feature extractors


# ----------------------------------------------------------------------------- reference and calculation steps


