"""The offline feature network: a small CNN trained on the dataset itself.

No Inception weights can be downloaded here, so, like the LeNet-feature FID of MNIST
papers, the pipeline trains its own network and takes two feature sets from it:

* pool features (``cfg.feature_dim``-d, the penultimate layer) for FID, precision and
  recall, where Inception has ``pool_3``;
* spatial features for sFID: the first ``cfg.spatial_channels`` channels of an
  intermediate map, channels-last (H, W, C) and flattened, where Inception has the
  first 7 channels of ``Mixed_6d.branch1x1`` (17 x 17 x 7 = 2023-d).

The training task is supervised classification when the labels hold at least two
classes, otherwise rotation prediction (0/90/180/270 degrees), so that unlabeled image
folders still get a feature space that knows about shapes and orientation.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mdmlib.config import FeatureNetConfig, from_dict, to_plain
from mdmlib.core.adam import Adam
from mdmlib.core.images import to_model_range
from mdmlib.core.io import atomic_write
from mdmlib.core.rng import seeded_global_rng

FORMAT = "mdmlib.feature_net/v1"
MAX_SPATIAL_SIZE = 8  # the sFID map is the first stage at most 8 x 8: 128-d for 2 channels


def _conv_block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    # GroupNorm rather than BatchNorm: a sample's features then never depend on the
    # batch it is evaluated with, and train/eval modes compute the same thing.
    groups = 8 if c_out % 8 == 0 else 1
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.GroupNorm(groups, c_out), nn.ReLU())


def spatial_map_size(resolution: int) -> int:
    """Side of the sFID map: the input halved (stride-2 convs, rounding up) until it is <= 8.

    8 -> 8, 16 -> 8, 28 -> 7, 32 -> 8, 64 -> 8: the sFID dimension stays at most 8*8*spatial_channels
    whatever the resolution, so a few thousand samples estimate its covariance.
    """
    size = resolution
    while size > MAX_SPATIAL_SIZE:
        size = (size + 1) // 2
    return size


class FeatureNet(nn.Module):
    """Conv blocks down to an at most 8x8 spatial map, one more stride-2 stage, global
    average pooling, a linear layer to the pool features, then ReLU + linear classifier.

    The pool features are the pre-activation of that penultimate layer: after a ReLU,
    units that are zero on many images put point masses at 0 and (dead units) make the
    covariance singular, which the Gaussian fit behind FID handles badly. The ReLU sits
    between the features and the classifier, so the head is still nonlinear.
    """

    def __init__(self, cfg: FeatureNetConfig, in_channels: int, resolution: int, num_classes: int):
        super().__init__()
        self.cfg, self.in_channels, self.resolution, self.num_classes = cfg, in_channels, resolution, num_classes
        width, size = cfg.width, resolution
        layers = [_conv_block(in_channels, width, 1), _conv_block(width, width, 1)]
        channels = width
        while size > MAX_SPATIAL_SIZE:
            layers.append(_conv_block(channels, min(2 * channels, 4 * width), 2))
            channels, size = min(2 * channels, 4 * width), (size + 1) // 2
        if cfg.spatial_channels > channels:
            raise ValueError(
                f"feature_net.spatial_channels={cfg.spatial_channels} exceeds the {channels} channels of the spatial map"
            )
        self.to_spatial = nn.Sequential(*layers)
        out_channels = min(2 * channels, 4 * width)
        self.after_spatial = nn.Sequential(
            _conv_block(channels, out_channels, 2), _conv_block(out_channels, out_channels, 1)
        )
        self.to_pool = nn.Linear(out_channels, cfg.feature_dim)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(cfg.feature_dim, num_classes))
        self.spatial_size = size
        self.spatial_dim = size * size * cfg.spatial_channels

    def _trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spatial_map = self.to_spatial(x)
        pool = self.to_pool(self.after_spatial(spatial_map).mean(dim=(2, 3)))
        return pool, spatial_map

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the training task; x is float in [-1, 1], N x C x H x W."""
        return self.head(self._trunk(x)[0])

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pool: N x feature_dim, spatial: N x spatial_dim), spatial flattened channels-last like sFID."""
        pool, spatial_map = self._trunk(x)
        spatial = spatial_map[:, : self.cfg.spatial_channels].permute(0, 2, 3, 1).flatten(1)
        return pool, spatial


# ----------------------------------------------------------------------------- training


def choose_task(labels: np.ndarray) -> tuple[str, int]:
    """("classification", number of classes) when every label is >= 0 and there are >= 2
    classes; ("rotation", 4) otherwise (unlabeled data is labelled -1)."""
    labels = np.asarray(labels)
    if len(labels) and labels.min() >= 0 and len(np.unique(labels)) >= 2:
        return "classification", int(labels.max()) + 1
    return "rotation", 4


def _rotate(x: torch.Tensor, quarter_turns: torch.Tensor) -> torch.Tensor:
    out = x.clone()
    for r in (1, 2, 3):
        chosen = quarter_turns == r
        out[chosen] = torch.rot90(x[chosen], r, dims=(2, 3))
    return out


def _random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Shift every image by its own random offset in [-max_shift, max_shift]^2, edges replicated."""
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # n x h x 1
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # n x 1 x w
    return padded[torch.arange(n)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)  # n x h x w x c -> n x c x h x w


def _task_batch(images, labels, task: str, gen: torch.Generator | None, start: int = 0):
    """Model input and targets of one batch. gen=None gives the fixed evaluation version:
    no shift and, for rotation, image i of the set (i = start + position) turned i % 4 times."""
    x = to_model_range(images)
    max_shift = x.shape[-1] // 16  # none at 8x8 (one pixel is 1/8 of a digit; it cost accuracy), 1 at 16-31, 2 at 32
    if gen is not None and max_shift > 0:
        x = _random_shift(x, max_shift, gen)
    if task == "classification":
        return x, labels
    turns = torch.randint(0, 4, (len(x),), generator=gen) if gen is not None else (start + torch.arange(len(x))) % 4
    return _rotate(x, turns), turns


@torch.inference_mode()
def _accuracy(net: FeatureNet, images, labels, task: str, device: str, batch_size: int = 500) -> float:
    if len(images) == 0:
        return float("nan")
    correct = 0
    for i in range(0, len(images), batch_size):
        x, y = _task_batch(images[i : i + batch_size], labels[i : i + batch_size], task, None, start=i)
        correct += (net(x.to(device)).argmax(1).cpu() == y).sum().item()
    return correct / len(images)


def _train_epoch(net, opt, images, labels, task, batch_size, gen, device) -> tuple[float, float]:
    """One pass over the shuffled training set; returns mean loss and accuracy on the augmented batches."""
    net.train()
    order = torch.randperm(len(images), generator=gen)
    total_loss, correct = 0.0, 0
    for i in range(0, len(images), batch_size):
        idx = order[i : i + batch_size]
        x, y = _task_batch(images[idx], labels[idx], task, gen)
        logits = net(x.to(device))
        loss = F.cross_entropy(logits, y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total_loss += loss.item() * len(idx)
        correct += (logits.argmax(1).cpu() == y).sum().item()
    return total_loss / len(images), correct / len(images)


def _images_tensor(images: np.ndarray, what: str) -> torch.Tensor:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"{what}: expected uint8 N x C x H x W images, got {images.dtype} {images.shape}")
    return torch.from_numpy(np.ascontiguousarray(images))


def train_feature_net(
    cfg: FeatureNetConfig,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    device: str = "cpu",
    log=print,
) -> tuple[FeatureNet, dict]:
    """Train the feature network (deterministic for cfg.seed on the CPU); returns it in eval mode and an info dict."""
    start = time.time()
    x_train, x_val = _images_tensor(train_images, "train_images"), _images_tensor(val_images, "val_images")
    y_train = torch.as_tensor(np.asarray(train_labels), dtype=torch.long)
    y_val = torch.as_tensor(np.asarray(val_labels), dtype=torch.long)
    task, num_classes = choose_task(train_labels)
    _, channels, resolution, width = x_train.shape
    if width != resolution or x_val.shape[1:] != x_train.shape[1:]:
        raise ValueError(
            f"train_feature_net: need square images of one shape, got {tuple(x_train.shape)} and {tuple(x_val.shape)}"
        )
    with seeded_global_rng(cfg.seed):  # seeded initialisation without touching the caller's RNG
        net = FeatureNet(cfg, channels, resolution, num_classes).to(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = Adam(net.parameters(), lr=cfg.learning_rate)
    log(f"feature net: {task} task, {num_classes} classes, {len(x_train)} train / {len(x_val)} val images")
    for epoch in range(cfg.epochs):
        loss, train_acc = _train_epoch(net, opt, x_train, y_train, task, cfg.batch_size, gen, device)
        val_acc = _accuracy(net.eval(), x_val, y_val, task, device)
        log(
            f"feature net epoch {epoch + 1}/{cfg.epochs}: loss {loss:.4f}, "
            f"train acc {train_acc:.3f} (running, augmented), val acc {val_acc:.3f}"
        )
    net.eval()
    info = {
        "task": task,
        "num_classes": num_classes,
        "train_accuracy": _accuracy(net, x_train, y_train, task, device),  # clean images, eval mode
        "val_accuracy": _accuracy(net, x_val, y_val, task, device),
        "epochs": cfg.epochs,
        "seconds": time.time() - start,
        "num_train": len(x_train),
        "num_val": len(x_val),
        "in_channels": channels,
        "resolution": resolution,
        "feature_dim": cfg.feature_dim,
        "spatial_dim": net.spatial_dim,
    }
    return net, info


def feature_network_name(info: dict, dataset: str | None = None) -> str:
    """Short description for table captions, e.g. "classifier CNN (digits labels, 64-d pool, 128-d spatial)"."""
    sizes = f"{info['feature_dim']}-d pool, {info['spatial_dim']}-d spatial"
    if info["task"] == "classification":
        source = f"{dataset} labels" if dataset else f"{info['num_classes']}-class labels"
        return f"classifier CNN ({source}, {sizes})"
    source = f"{dataset} images" if dataset else "unlabeled images"
    return f"rotation-prediction CNN ({source}, {sizes})"


# ----------------------------------------------------------------------------- persistence


def _build_from_config(config: dict) -> FeatureNet:
    arch = dict(config)
    in_channels, resolution, num_classes = arch.pop("in_channels"), arch.pop("resolution"), arch.pop("num_classes")
    return FeatureNet(from_dict(FeatureNetConfig, arch), in_channels, resolution, num_classes)


def save_feature_net(path: str | Path, net: FeatureNet, info: dict, cfg: FeatureNetConfig) -> None:
    """One self-describing file (format, config, state_dict, info), written to a temporary name and renamed."""
    arch = {"in_channels": net.in_channels, "resolution": net.resolution, "num_classes": net.num_classes}
    config = {**to_plain(cfg), **arch}
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    _build_from_config(config).load_state_dict(state)  # refuse now a file that could not be loaded later
    payload = {"format": FORMAT, "config": config, "state_dict": state, "info": dict(info)}
    atomic_write(path, lambda f: torch.save(payload, f))


def load_feature_net(path: str | Path) -> tuple[FeatureNet, dict]:
    """Rebuild the network from the stored config; ValueError naming the path for anything else."""
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # truncated zip, not a torch file, missing file ...
        raise ValueError(f"{path}: not a readable feature-net file ({type(err).__name__}: {err})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a feature-net file (expected format {FORMAT!r})")
    missing = [key for key in ("config", "state_dict", "info") if key not in payload]
    if missing:
        raise ValueError(f"{path}: feature-net file lacks {missing}")
    try:
        net = _build_from_config(payload["config"])
        net.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{path}: stored config and weights do not rebuild a FeatureNet ({err})") from err
    return net.eval(), payload["info"]


# ----------------------------------------------------------------------------- extraction


def extract_features(
    net: FeatureNet, images_uint8: np.ndarray, batch_size: int = 500, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """(pool, spatial) features of uint8 N x C x H x W images as float64 arrays.

    The network has no batch-dependent or dropout layers, so its mode does not matter.
    """
    images = _images_tensor(images_uint8, "extract_features")
    if len(images) == 0 or images.shape[1:] != (net.in_channels, net.resolution, net.resolution):
        raise ValueError(
            f"extract_features: the network takes N x {net.in_channels} x {net.resolution} x {net.resolution} "
            f"images (N >= 1), got {tuple(images.shape)}"
        )
    net = net.to(device)
    pools, spatials = [], []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            pool, spatial = net.features(to_model_range(images[i : i + batch_size].to(device)))
            pools.append(pool.double().cpu().numpy())
            spatials.append(spatial.double().cpu().numpy())
    return np.concatenate(pools), np.concatenate(spatials)
