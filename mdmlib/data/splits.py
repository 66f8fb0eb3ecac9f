"""Train/validation splits: written once as uint8 ``.npz`` with their provenance, read back
with ``load_split``, which refuses anything malformed instead of guessing.
"""
from __future__ import annotations

import datetime
import json
import platform
import zipfile
import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from mdmlib.config import DataConfig
from mdmlib.core.io import atomic_savez, atomic_write_text
from mdmlib.data.datasets import _LOADERS, DatasetError, _check_config, _Loaded, _sha256


def _versions() -> dict:
    import PIL
    import sklearn
    import torchvision

    modules = {"numpy": np, "torch": torch, "torchvision": torchvision, "sklearn": sklearn, "pillow": PIL}
    return {"python": platform.python_version(), **{name: m.__version__ for name, m in modules.items()}}


def _split(loaded: _Loaded, cfg: DataConfig) -> tuple[tuple, tuple, str]:
    """Train and validation (images, labels), truncated to max_train / max_val, and the rule used."""
    rng = np.random.default_rng(cfg.seed)
    if "all" in loaded.splits:
        images, labels = loaded.splits["all"]
        if not 1 <= cfg.val_size < len(images):
            raise DatasetError(
                f"{cfg.dataset}: data.val_size must be between 1 and {len(images) - 1} for the "
                f"{len(images)} images of {loaded.source}, got {cfg.val_size}"
            )
        order = rng.permutation(len(images))
        val = (images[order[: cfg.val_size]], labels[order[: cfg.val_size]])
        train = (images[order[cfg.val_size :]], labels[order[cfg.val_size :]])
        rule = "random: rng = numpy default_rng(seed); val = first val_size of rng.permutation(N), train = the rest"
    else:
        train, val = loaded.splits["train"], loaded.splits["val"]
        rule = "official: the dataset's train split -> train, its test split -> val"
    # shuffling always (not only when truncating) makes max_train=N the first N of the full split
    shuffle = rng.permutation(len(train[0]))
    train = tuple(a[shuffle][: cfg.max_train] for a in train)
    val = tuple(a[: cfg.max_val] for a in val)
    rule += "; train then shuffled by the next rng.permutation; max_train / max_val keep the first N"
    return train, val, rule


def prepare_dataset(cfg: DataConfig, train_path, val_path, provenance_path) -> dict:
    """Build the train/validation splits of ``cfg.dataset``, write them and their provenance."""
    _check_config(cfg)
    loaded = _LOADERS[cfg.dataset](cfg)
    train, val, rule = _split(loaded, cfg)
    outputs = {}
    for name, path, (images, labels) in (("train", Path(train_path), train), ("val", Path(val_path), val)):
        atomic_savez(path, images=images, labels=labels)
        outputs[name] = {"path": str(path), "sha256": _sha256(path)}
    provenance = {
        "dataset": cfg.dataset,
        "source": loaded.source,
        **loaded.files,
        "original": loaded.original,
        "resolution": cfg.resolution,
        "channels": cfg.channels,
        "split": {"rule": rule, "seed": cfg.seed, "val_size": cfg.val_size,
                  "max_train": cfg.max_train, "max_val": cfg.max_val},
        "counts": {"train": len(train[0]), "val": len(val[0])},
        "num_classes": len(loaded.classes),
        "classes": loaded.classes,
        "outputs": outputs,
        "config": asdict(cfg),
        "versions": _versions(),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    text = json.dumps(provenance, indent=2) + "\n"
    atomic_write_text(provenance_path, text)
    return provenance


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    not_npz = f"split {path}: not a readable .npz archive (expected arrays 'images' and 'labels')"
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError as err:
        raise DatasetError(f"split {path}: no such file; run dataset preparation first") from err
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DatasetError(f"{not_npz} ({type(err).__name__}: {err})") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):  # a plain .npy loads as one array
        raise DatasetError(not_npz)
    with archive:
        missing = [k for k in ("images", "labels") if k not in archive.files]
        if missing:
            raise DatasetError(f"split {path}: missing array(s) {missing}; expected 'images' and 'labels'")
        try:
            return archive["images"], archive["labels"]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, zlib.error) as err:
            # zlib.error and CRC failures of a truncated member surface as these
            raise DatasetError(f"split {path}: unreadable or truncated .npz ({type(err).__name__}: {err})") from err


def load_split(path) -> tuple[np.ndarray, np.ndarray]:
    """Load one split written by ``prepare_dataset``: (uint8 N x C x H x W, int64 N)."""
    path = Path(path)
    images, labels = _read_npz(path)
    problems = []
    if images.dtype != np.uint8:
        problems.append(f"images dtype {images.dtype}, expected uint8")
    if labels.dtype != np.int64:
        problems.append(f"labels dtype {labels.dtype}, expected int64")
    if images.ndim != 4:
        problems.append(f"images shape {images.shape}, expected N x C x H x W")
    elif images.shape[1] not in (1, 3) or images.shape[2] != images.shape[3]:
        problems.append(f"images shape {images.shape}, expected C in (1, 3) and square H = W")
    if labels.ndim != 1:
        problems.append(f"labels shape {labels.shape}, expected one dimension")
    elif images.ndim >= 1 and len(images) != len(labels):
        problems.append(f"{len(images)} images but {len(labels)} labels")
    if not problems and len(images) == 0:
        problems.append("no images")
    if problems:
        raise DatasetError(f"split {path}: malformed: {'; '.join(problems)}")
    return images, labels
