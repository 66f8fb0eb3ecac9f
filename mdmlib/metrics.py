"""FID, sFID and improved precision/recall with the ADM evaluator's definitions.

The formulas follow guided-diffusion's ``evaluations/evaluator.py`` (see
``shared/notes/METRICS.md``); the features come from a :class:`FeatureExtractor` that
``metrics.features`` picks (:func:`make_extractor`): the small CNN of ``mdmlib.features``
(the offline default) or Inception-v3 (``mdmlib.inception``). As in EDM's ``fid.py``
there are two steps: a reference step that caches the dataset's features and statistics
to ``.npz`` (:func:`compute_reference`), and a calculation step (:func:`evaluate_samples`).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from scipy import linalg

from .config import MetricsConfig
from .features import FeatureNet, extract_features, feature_network_name, load_feature_net

REFERENCE_KEYS = (
    "pool_features", "pool_mu", "pool_sigma", "spatial_mu", "spatial_sigma", "num_reference", "feature_network"
)


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


@dataclass(frozen=True)
class MetricResult:
    fid: float  # Frechet distance of the pool features
    sfid: float  # Frechet distance of the spatial features
    precision: float
    recall: float
    num_samples: int  # generated images evaluated
    num_reference: int  # reference images behind the statistics
    feature_network: str  # FIDs compare only at equal feature network and sample counts

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- feature extractors


class FeatureExtractor(Protocol):
    """What the metric steps need from a feature network; they never ask which one it is."""

    name: str  # stored with the reference: FIDs compare only at equal feature networks

    def extract(self, images_uint8: np.ndarray, batch_size: int, device) -> tuple[np.ndarray, np.ndarray]:
        """(pool, spatial) float64 features of uint8 N x C x H x W images."""

    def frechet_distance(self, mu1, sigma1, mu2, sigma2) -> float: ...


@dataclass
class ClassifierFeatures:
    """The offline feature network (``metrics.features: classifier``) as a FeatureExtractor."""

    net: FeatureNet
    name: str = "classifier CNN"

    def extract(self, images_uint8, batch_size=500, device="cpu"):
        return extract_features(self.net, images_uint8, batch_size=batch_size, device=device)

    @staticmethod
    def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
        return frechet_distance(mu1, sigma1, mu2, sigma2)


def make_extractor(cfg: MetricsConfig, feature_net_path: str | Path | None = None,
                   dataset: str | None = None) -> FeatureExtractor:
    """The extractor ``cfg.features`` names; the classifier is read from ``feature_net_path``."""
    if cfg.features == "inception":
        from .inception import InceptionFeatures  # torch-fidelity is imported only on this path

        return InceptionFeatures(cfg.inception_weights)
    if feature_net_path is None:
        raise ValueError("metrics.features 'classifier' needs the trained feature network's file")
    net, info = load_feature_net(feature_net_path)
    return ClassifierFeatures(net, feature_network_name(info, dataset))


def _as_extractor(net) -> FeatureExtractor:
    return ClassifierFeatures(net) if isinstance(net, FeatureNet) else net  # a bare FeatureNet is the classifier


# ----------------------------------------------------------------------------- reference and calculation steps


def _atomic_savez(out_path: str | Path, arrays: dict) -> None:
    """np.savez to a temporary name in the same folder, then rename.

    Writing through an open file stops np.savez from appending ".npz", so the file ends
    up exactly at ``out_path`` whatever its suffix.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)


def compute_reference(
    extractor: FeatureExtractor | FeatureNet, images_uint8: np.ndarray, out_path: str | Path,
    feature_network: str | None = None, batch_size: int = 500, device: str = "cpu",
) -> None:
    """Reference step: features and statistics of the dataset images, cached to ``out_path`` (.npz).

    ``feature_network`` (default: the extractor's name) is stored to label the statistics.
    """
    extractor = _as_extractor(extractor)
    feature_network = extractor.name if feature_network is None else feature_network
    pool, spatial = extractor.extract(images_uint8, batch_size=batch_size, device=device)
    pool_mu, pool_sigma = feature_statistics(pool)
    spatial_mu, spatial_sigma = feature_statistics(spatial)
    _atomic_savez(
        out_path,
        {
            "pool_features": pool,  # kept for precision/recall, which need the points
            "pool_mu": pool_mu,
            "pool_sigma": pool_sigma,
            "spatial_mu": spatial_mu,
            "spatial_sigma": spatial_sigma,
            "num_reference": np.int64(len(pool)),
            "feature_network": np.str_(feature_network),
        },
    )


def load_reference(path: str | Path) -> dict:
    """Read a file written by :func:`compute_reference`; ValueError naming the path if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            ref = {key: npz[key] for key in REFERENCE_KEYS}
        ref["num_reference"] = int(ref["num_reference"])
        ref["feature_network"] = str(ref["feature_network"])
    except Exception as err:  # BadZipFile, EOFError, KeyError, OSError ... all mean "not a reference"
        raise ValueError(f"{path}: not a readable reference-statistics file ({type(err).__name__}: {err})") from err
    if not _reference_shapes_agree(ref):
        raise ValueError(f"{path}: reference arrays have inconsistent shapes")
    return ref


def _reference_shapes_agree(ref: dict) -> bool:
    if ref["pool_features"].ndim != 2 or ref["spatial_mu"].ndim != 1:
        return False
    n, d = ref["pool_features"].shape
    s = ref["spatial_mu"].shape[0]
    return (
        n == ref["num_reference"]
        and ref["pool_mu"].shape == (d,)
        and ref["pool_sigma"].shape == (d, d)
        and ref["spatial_sigma"].shape == (s, s)
    )


def evaluate_samples(
    extractor: FeatureExtractor | FeatureNet,
    reference: dict,
    sample_images_uint8: np.ndarray,
    feature_network: str | None = None,
    k: int = 3,
    block_size: int = 10000,
    batch_size: int = 500,
    device: str = "cpu",
) -> MetricResult:
    """Calculation step: FID, sFID, precision and recall of samples against a reference, one feature pass.

    ``feature_network`` (default: the extractor's name) must be the reference's.
    """
    extractor = _as_extractor(extractor)
    feature_network = extractor.name if feature_network is None else feature_network
    if feature_network != reference["feature_network"]:
        raise ValueError(
            f"evaluate_samples: reference was computed with {reference['feature_network']!r}, "
            f"samples with {feature_network!r}"
        )
    pool, spatial = extractor.extract(sample_images_uint8, batch_size=batch_size, device=device)
    if pool.shape[1] != reference["pool_mu"].shape[0] or spatial.shape[1] != reference["spatial_mu"].shape[0]:
        raise ValueError("evaluate_samples: sample features and reference statistics differ in size")
    pool_mu, pool_sigma = feature_statistics(pool)
    spatial_mu, spatial_sigma = feature_statistics(spatial)
    precision, recall = precision_recall(reference["pool_features"], pool, k=k, block_size=block_size)
    return MetricResult(
        fid=extractor.frechet_distance(pool_mu, pool_sigma, reference["pool_mu"], reference["pool_sigma"]),
        sfid=extractor.frechet_distance(spatial_mu, spatial_sigma, reference["spatial_mu"], reference["spatial_sigma"]),
        precision=precision,
        recall=recall,
        num_samples=len(pool),
        num_reference=reference["num_reference"],
        feature_network=feature_network,
    )
