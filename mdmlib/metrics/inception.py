"""Inception-v3 features for FID, sFID, precision and recall (``metrics.features: inception``).

The papers report numbers from the ADM evaluator, whose features come from the
2015-12-05 TensorFlow Inception graph (``shared/notes/METRICS.md``). torch-fidelity's
``FeatureExtractorInceptionV3`` reproduces that graph in PyTorch, including the TF1-style
resize of uint8 images to 299 x 299 and the (x - 128) / 128 scaling. One forward pass
gives both feature sets:

* ``pool_3`` (2048-d): FID, precision and recall;
* ``Mixed_6d.branch1x1`` (TF ``mixed_6/conv``, N x 192 x 17 x 17), captured by a forward
  hook: its first 7 channels, channels-last and flattened, 17 * 17 * 7 = 2023-d: sFID.

Frechet distances go through clean-fid; precision and recall through the blocked k-NN
code of :mod:`mdmlib.metrics`. No weights can be downloaded on the development and CI
machines, so they come from a configured local file (``metrics.inception_weights``);
``None`` lets torch-fidelity download them into the torch hub cache.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from scipy import linalg

from mdmlib.metrics.inception_weights import (
    WEIGHTS_FILE,
    check_weights_file,
    missing_weights_message,
)

POOL_DIM = 2048
SPATIAL_CHANNELS = 7
SPATIAL_SIZE = 17
SPATIAL_DIM = SPATIAL_SIZE * SPATIAL_SIZE * SPATIAL_CHANNELS  # 2023


def _state_dict_is_plain(path: Path) -> None:
    # torch-fidelity loads the file with weights_only=False (arbitrary pickle); read it
    # safely first, so a foreign or corrupt file fails here with its name.
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:
        raise ValueError(f"{path}: not a readable Inception weights file ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or "Mixed_6d.branch1x1.conv.weight" not in state:
        raise ValueError(f"{path}: not torch-fidelity's Inception state dict ({WEIGHTS_FILE})")


class InceptionFeatures:
    """The ADM evaluator's Inception features behind the metric steps' extractor interface:
    ``name``, ``extract(images, batch_size, device) -> (pool, spatial)`` and ``frechet_distance``."""

    name = f"Inception-v3 (2015-12-05 graph; pool_3 {POOL_DIM}-d, Mixed_6d.branch1x1 {SPATIAL_DIM}-d)"

    def __init__(self, weights_path: str | Path | None = None):
        from torch_fidelity.feature_extractor_inceptionv3 import (
            FeatureExtractorInceptionV3,
        )

        if weights_path is not None:
            weights_path = check_weights_file(weights_path)
            _state_dict_is_plain(weights_path)
        local = None if weights_path is None else str(weights_path)
        try:
            self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=local)
        except OSError as err:  # the download (urllib's URLError is an OSError) when no path is configured
            raise RuntimeError(missing_weights_message(weights_path)) from err
        self.spatial_module = self.net.Mixed_6d.branch1x1
        self._spatial_map: torch.Tensor | None = None
        self.spatial_module.register_forward_hook(self._capture)

    def _capture(self, module, inputs, output: torch.Tensor) -> None:
        self._spatial_map = output

    def extract(self, images_uint8: np.ndarray, batch_size: int = 500, device: str | torch.device = "cpu"
                ) -> tuple[np.ndarray, np.ndarray]:
        """(pool N x 2048, spatial N x 2023) float64 features of uint8 N x C x H x W images, C = 1 or 3.

        Any H x W: the extractor resizes to 299 x 299 itself. Greyscale is repeated to RGB.
        """
        images = np.asarray(images_uint8)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3) or len(images) == 0:
            raise ValueError(
                f"InceptionFeatures: expected uint8 N x (1|3) x H x W images, got {images.dtype} {images.shape}"
            )
        net = self.net.to(device)
        pools, spatials = [], []
        with torch.inference_mode():
            for i in range(0, len(images), batch_size):
                x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).to(device)
                (pool,) = net(x.expand(-1, 3, -1, -1))
                spatial = self._spatial_map[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).flatten(1)
                self._spatial_map = None
                pools.append(pool.double().cpu().numpy())
                spatials.append(spatial.double().cpu().numpy())
        return np.concatenate(pools), np.concatenate(spatials)

    @staticmethod
    def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
        """clean-fid's Frechet distance (the same ADM / TTUR formula as mdmlib.metrics)."""
        from cleanfid.fid import frechet_distance

        from mdmlib.metrics.fid import frechet_distance as adm_frechet_distance

        with warnings.catch_warnings():
            # clean-fid 0.1.35 calls sqrtm(..., disp=False), deprecated in SciPy 1.17; singular
            # products warn too, and clean-fid itself handles them with its eps retry.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            try:
                return float(frechet_distance(mu1, sigma1, mu2, sigma2))
            except TypeError as err:
                if "disp" not in str(err):
                    raise
        return adm_frechet_distance(mu1, sigma1, mu2, sigma2)  # SciPy >= 1.18 removed disp
