"""The calculation step of the metrics: FID, sFID, precision and recall of each point of a run's series."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from mdmlib.config import MetricsConfig
from mdmlib.metrics.features import FeatureNet
from mdmlib.metrics.fid import feature_statistics, precision_recall
from mdmlib.metrics.reference import (
    FeatureExtractor,
    _as_extractor,
    load_reference,
    make_extractor,
)
from mdmlib.sampling.points import load_samples, split_sets

METRIC_COLUMNS = ("fid", "sfid", "precision", "recall")


def evaluate_series(run: str, sample_paths: Sequence[str | Path], feature_net_path: str | Path | None,
                    reference_path: str | Path, cfg: MetricsConfig, points: Sequence[int] | None = None,
                    log: Callable[[str], None] = print, device: str | torch.device = "cpu",
                    extra_paths: Sequence[str | Path] | None = None) -> pd.DataFrame:
    """One row per evaluation point and sample set: metrics, checkpoint steps, WCT and TC in seconds.

    ``points`` numbers the sample files (1, 2, ... when not given); ``extra_paths``, one per point,
    hold each point's other sample sets (``mdmlib.sampling.points.sample_point``), each scored on
    its own."""
    extractor = make_extractor(cfg, feature_net_path)  # classifier CNN or Inception, by cfg.features
    reference = load_reference(reference_path)
    feature_network = str(reference["feature_network"])
    rows = []
    points = list(points) if points is not None else list(range(1, len(sample_paths) + 1))
    if len(points) != len(sample_paths) or (extra_paths is not None and len(extra_paths) != len(points)):
        raise ValueError(f"{len(sample_paths)} sample files and {len(extra_paths or [])} extra-set files for "
                         f"{len(points)} points")
    for k, (point, path) in enumerate(zip(points, sample_paths)):
        files = [path] + ([extra_paths[k]] if extra_paths is not None else [])
        for file in files:
            samples = load_samples(file)
            for seed_set, images in split_sets(samples).items():
                result = evaluate_samples(extractor, reference, images, feature_network,
                                          k=cfg.pr_k, block_size=cfg.block_size, device=device)
                seconds = samples["checkpoint_seconds"]
                rows.append({
                    "run": run, "point": point, "seed_set": seed_set, **result.to_dict(),
                    "reference": reference["reference_split"],
                    "steps": " ".join(str(int(s)) for s in samples["checkpoint_steps"]),
                    "fraction_of_budget": float(np.mean(samples["checkpoint_steps"] / samples["checkpoint_iterations"])),
                    "total_steps": int(samples["checkpoint_steps"].sum()),
                    # Experts train in parallel: WCT is the slowest one, TC the sum (MDM Sec. 5.2).
                    "wct_seconds": float(seconds.max()), "tc_seconds": float(seconds.sum()),
                })
                log(f"[{run}] point {point} set {seed_set}: FID {result.fid:.3f} sFID {result.sfid:.3f} "
                    f"P {result.precision:.3f} R {result.recall:.3f}")
    sets = pd.DataFrame(rows)
    if sets.duplicated(["point", "seed_set"]).any():
        raise ValueError(f"[{run}] a sample set is scored twice at one point")
    return sets


def point_means(sets: pd.DataFrame) -> pd.DataFrame:
    """One row per point: each metric's mean over the point's sample sets, its sd (``<metric>_sd``,
    ddof 1; NaN for one set) and the number of sets; the other columns from the point's set 0."""
    rows = []
    for point, group in sets.groupby("point", sort=True):
        row = group.sort_values("seed_set").iloc[0].drop("seed_set").to_dict()
        for metric in METRIC_COLUMNS:
            row[metric] = float(group[metric].mean())
            row[f"{metric}_sd"] = float(group[metric].std(ddof=1)) if len(group) > 1 else float("nan")
        row["seed_sets"] = len(group)
        rows.append(row)
    return pd.DataFrame(rows)


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
