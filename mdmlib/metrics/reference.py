"""The reference step of the metrics (EDM's ``fid.py`` split): feature extractors and the
dataset statistics cached to ``.npz``, refused when malformed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from mdmlib.config import MetricsConfig
from mdmlib.core.io import atomic_savez
from mdmlib.metrics.features import (
    FeatureNet,
    extract_features,
    feature_network_name,
    load_feature_net,
)
from mdmlib.metrics.fid import feature_statistics, frechet_distance

REFERENCE_KEYS = (
    "pool_features", "pool_mu", "pool_sigma", "spatial_mu", "spatial_sigma", "num_reference", "feature_network"
)


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
        from mdmlib.metrics.inception import (
            InceptionFeatures,  # torch-fidelity is imported only on this path
        )

        return InceptionFeatures(cfg.inception_weights)
    if feature_net_path is None:
        raise ValueError("metrics.features 'classifier' needs the trained feature network's file")
    net, info = load_feature_net(feature_net_path)
    return ClassifierFeatures(net, feature_network_name(info, dataset))


def _as_extractor(net) -> FeatureExtractor:
    return ClassifierFeatures(net) if isinstance(net, FeatureNet) else net  # a bare FeatureNet is the classifier



def reference_images(reference: str, val: np.ndarray, train: np.ndarray) -> np.ndarray:
    """The images of ``metrics.reference``: 'validation', 'training' or 'both'."""
    choices = {"validation": val, "training": train, "both": np.concatenate([val, train])}
    if reference not in choices:
        raise ValueError(f"config key 'metrics.reference': {reference!r}; expected one of {sorted(choices)}")
    return choices[reference]


def compute_reference(
    extractor: FeatureExtractor | FeatureNet, images_uint8: np.ndarray, out_path: str | Path,
    feature_network: str | None = None, batch_size: int = 500, device: str = "cpu", split: str = "validation",
) -> None:
    """Reference step: features and statistics of the dataset images, cached to ``out_path`` (.npz).

    ``feature_network`` (default: the extractor's name) is stored to label the statistics, and
    ``split`` to name the images in the tables' captions.
    """
    extractor = _as_extractor(extractor)
    feature_network = extractor.name if feature_network is None else feature_network
    pool, spatial = extractor.extract(images_uint8, batch_size=batch_size, device=device)
    pool_mu, pool_sigma = feature_statistics(pool)
    spatial_mu, spatial_sigma = feature_statistics(spatial)
    atomic_savez(
        out_path,
        pool_features=pool,  # kept for precision/recall, which need the points
        pool_mu=pool_mu,
        pool_sigma=pool_sigma,
        spatial_mu=spatial_mu,
        spatial_sigma=spatial_sigma,
        num_reference=np.int64(len(pool)),
        feature_network=np.str_(feature_network),
        reference_split=np.str_(split),
    )


def load_reference(path: str | Path) -> dict:
    """Read a file written by :func:`compute_reference`; ValueError naming the path if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            ref = {key: npz[key] for key in REFERENCE_KEYS}
            split = str(npz["reference_split"]) if "reference_split" in npz.files else "validation"
        ref["num_reference"] = int(ref["num_reference"])
        ref["feature_network"] = str(ref["feature_network"])
        ref["reference_split"] = split
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
