"""Dataset loaders: digits, CIFAR-10, Fashion-MNIST and image folders, converted to uint8 NCHW.

Every dataset ends up as ``images`` (uint8, N x C x H x W, H = W = resolution) and ``labels``
(int64, -1 when unknown); ``mdmlib.data.splits`` splits and writes them.
"""
from __future__ import annotations

import gzip
import hashlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mdmlib.config import DataConfig

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
FASHION_MNIST_FILES = tuple(
    f"{split}-{kind}.gz" for split in ("train", "t10k") for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")
)
HASH_LIMIT_BYTES = 500 * 2**20  # larger source files are listed without a checksum
PER_FILE_LISTING_LIMIT = 1000  # image folders with more files get only the combined digest


class DatasetError(ValueError):
    """A dataset or split file is missing or malformed; the message names the path."""


@dataclass
class _Loaded:
    """Images of one dataset, already converted to uint8 NCHW at the target size."""

    splits: dict[str, tuple[np.ndarray, np.ndarray]]  # {"all": ...} or official {"train": ..., "val": ...}
    classes: list[str]
    source: str
    original: dict  # count and size of the source images before conversion
    files: dict = field(default_factory=dict)  # source file description for the provenance


def _square_resize(img: Image.Image, resolution: int) -> Image.Image:
    """Center-crop to a square, then resize with antialiased bicubic (the one resize of the module)."""
    width, height = img.size
    side = min(width, height)
    if width != height:
        left, top = (width - side) // 2, (height - side) // 2
        img = img.crop((left, top, left + side, top + side))
    if side != resolution:
        img = img.resize((resolution, resolution), Image.Resampling.BICUBIC)
    return img


def _pil_to_chw(img: Image.Image, channels: int, resolution: int) -> np.ndarray:
    # "L" is ITU-R 601 luma; "L" -> "RGB" repeats the grey channel
    img = _square_resize(img.convert("L" if channels == 1 else "RGB"), resolution)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _convert_array(images: np.ndarray, channels: int, resolution: int) -> np.ndarray:
    """uint8 N x H x W (grey) or N x H x W x 3 (RGB) -> uint8 N x C x res x res."""
    grey = images.ndim == 3
    if images.shape[1] == resolution and images.shape[2] == resolution and grey == (channels == 1):
        return np.ascontiguousarray(images[:, None] if grey else images.transpose(0, 3, 1, 2))
    out = np.empty((len(images), channels, resolution, resolution), dtype=np.uint8)
    for i, image in enumerate(images):
        out[i] = _pil_to_chw(Image.fromarray(image), channels, resolution)
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _describe_file(path: Path, name: str | None = None) -> dict:
    size = path.stat().st_size
    entry = {"name": name or path.name, "bytes": size}
    if size < HASH_LIMIT_BYTES:
        entry["sha256"] = _sha256(path)
    return entry


def _require_root(cfg: DataConfig) -> Path:
    if not cfg.root:
        raise DatasetError(f"{cfg.dataset}: data.root is not set; it must name the folder that holds the data")
    return Path(cfg.root).expanduser()


def _load_digits(cfg: DataConfig) -> _Loaded:
    import sklearn.datasets

    digits = sklearn.datasets.load_digits()
    grey = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 -> 0..255
    bundled = Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"
    files = {"files": [_describe_file(bundled)]} if bundled.is_file() else {}
    return _Loaded(
        splits={"all": (_convert_array(grey, cfg.channels, cfg.resolution), digits.target.astype(np.int64))},
        classes=[str(c) for c in digits.target_names],
        source="sklearn.datasets.load_digits",
        original={"count": len(grey), "height": 8, "width": 8, "channels": 1},
        files=files,
    )


def _load_cifar10(cfg: DataConfig) -> _Loaded:
    import torchvision

    root = _require_root(cfg)
    base = torchvision.datasets.CIFAR10.base_folder
    if root.name == base:  # tolerate a root that points at the batches folder itself
        root = root.parent
    folder = root / base
    missing = [n for n in CIFAR10_FILES if not (folder / n).is_file()]
    if missing and not cfg.download:
        raise DatasetError(
            f"cifar10: no CIFAR-10 data under {root}: expected the folder {base} with {', '.join(CIFAR10_FILES)} "
            f"(the python version from {CIFAR10_URL}), or set data.download: true"
        )
    try:
        train = torchvision.datasets.CIFAR10(str(root), train=True, download=cfg.download)
        test = torchvision.datasets.CIFAR10(str(root), train=False, download=cfg.download)
    except (RuntimeError, OSError, ValueError, EOFError) as err:  # md5 mismatch, failed download, bad pickle
        raise DatasetError(
            f"cifar10: could not load CIFAR-10 from {folder}: expected the unmodified python version "
            f"from {CIFAR10_URL} ({err})"
        ) from err
    splits = {
        name: (_convert_array(ds.data, cfg.channels, cfg.resolution), np.asarray(ds.targets, dtype=np.int64))
        for name, ds in (("train", train), ("val", test))
    }
    return _Loaded(
        splits=splits,
        classes=list(train.classes),
        source=str(folder),
        original={"count": len(train.data) + len(test.data), "height": 32, "width": 32, "channels": 3},
        files={"files": [_describe_file(folder / n) for n in CIFAR10_FILES]},
    )


def _find_fashion_mnist_files(root: Path) -> dict[str, Path]:
    """The four idx .gz files, in torchvision's layout or flat in ``root`` (Debian's package)."""
    for folder in (root / "FashionMNIST" / "raw", root):
        if all((folder / n).is_file() for n in FASHION_MNIST_FILES):
            return {n: folder / n for n in FASHION_MNIST_FILES}
    raise DatasetError(
        f"fashion_mnist: no Fashion-MNIST data under {root}: expected {', '.join(FASHION_MNIST_FILES)} "
        f"either in {root / 'FashionMNIST' / 'raw'} (torchvision's layout) or directly in {root}"
    )


def _load_fashion_mnist(cfg: DataConfig) -> _Loaded:
    import torchvision

    root = _require_root(cfg)
    sources = _find_fashion_mnist_files(root)
    # torchvision reads only the decompressed idx files (it gunzips them after a download), so
    # stage decompressed copies in torchvision's layout instead of symlinking the .gz files
    with tempfile.TemporaryDirectory(prefix="fashion_mnist_") as staging:
        raw = Path(staging) / "FashionMNIST" / "raw"
        raw.mkdir(parents=True)
        try:
            for name, path in sources.items():
                with gzip.open(path, "rb") as src, open(raw / name[: -len(".gz")], "wb") as dst:
                    shutil.copyfileobj(src, dst)
            train = torchvision.datasets.FashionMNIST(staging, train=True, download=False)
            test = torchvision.datasets.FashionMNIST(staging, train=False, download=False)
        except (OSError, EOFError, AssertionError, RuntimeError, ValueError, TypeError) as err:
            raise DatasetError(
                f"fashion_mnist: malformed Fashion-MNIST files in {next(iter(sources.values())).parent}: "
                f"expected gzipped idx files as published by Zalando ({type(err).__name__}: {err})"
            ) from err
    splits = {
        name: (_convert_array(ds.data.numpy(), cfg.channels, cfg.resolution), ds.targets.numpy().astype(np.int64))
        for name, ds in (("train", train), ("val", test))
    }
    return _Loaded(
        splits=splits,
        classes=list(train.classes),
        source=str(next(iter(sources.values())).parent),
        original={"count": len(train) + len(test), "height": 28, "width": 28, "channels": 1},
        files={"files": [_describe_file(p) for p in sources.values()]},
    )


def _list_images(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DatasetError(f"image_folder: {root} is not a folder")
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise DatasetError(
            f"image_folder: no images under {root}: expected files ending in {', '.join(IMAGE_EXTENSIONS)} "
            "(case-insensitive, searched recursively)"
        )
    return paths


def _read_image(path: Path, cfg: DataConfig) -> tuple[np.ndarray, tuple[int, int]]:
    try:
        with Image.open(path) as img:
            img.load()
            return _pil_to_chw(img, cfg.channels, cfg.resolution), img.size
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
        raise DatasetError(f"image_folder: cannot read image {path} ({type(err).__name__}: {err})") from err


def _image_folder_files(root: Path, paths: list[Path]) -> dict:
    """Combined digest over (relative path, sha256); the per-file list only for small folders."""
    entries = [_describe_file(p, str(p.relative_to(root))) for p in paths]
    combined = hashlib.sha256("".join(f"{e['name']}\t{e.get('sha256', '')}\n" for e in entries).encode())
    files = {"num_files": len(entries), "files_sha256": combined.hexdigest()}
    if len(entries) <= PER_FILE_LISTING_LIMIT:
        files["files"] = entries
    return files


def _load_image_folder(cfg: DataConfig) -> _Loaded:
    root = _require_root(cfg)
    paths = _list_images(root)
    # ImageFolder convention: first-level subfolder names, sorted, are the classes
    classes = sorted({p.relative_to(root).parts[0] for p in paths if len(p.relative_to(root).parts) > 1})
    class_index = {name: i for i, name in enumerate(classes)}
    images = np.empty((len(paths), cfg.channels, cfg.resolution, cfg.resolution), dtype=np.uint8)
    labels = np.full(len(paths), -1, dtype=np.int64)  # images directly in root stay unlabelled
    sizes = []
    for i, path in enumerate(paths):
        images[i], size = _read_image(path, cfg)
        sizes.append(size)
        parts = path.relative_to(root).parts
        if len(parts) > 1:
            labels[i] = class_index[parts[0]]
    widths, heights = zip(*sizes)
    original = {"count": len(paths), "min_width": min(widths), "max_width": max(widths),
                "min_height": min(heights), "max_height": max(heights)}
    return _Loaded({"all": (images, labels)}, classes, str(root), original, _image_folder_files(root, paths))


_LOADERS = {
    "digits": _load_digits,
    "cifar10": _load_cifar10,
    "fashion_mnist": _load_fashion_mnist,
    "image_folder": _load_image_folder,
}
SUPPORTED_DATASETS = tuple(_LOADERS)


def _check_config(cfg: DataConfig) -> None:
    if cfg.dataset not in SUPPORTED_DATASETS:
        raise DatasetError(f"unknown dataset {cfg.dataset!r}; supported: {', '.join(SUPPORTED_DATASETS)}")
    if cfg.channels not in (1, 3):
        raise DatasetError(f"{cfg.dataset}: data.channels must be 1 or 3, got {cfg.channels}")
    if cfg.resolution < 1:
        raise DatasetError(f"{cfg.dataset}: data.resolution must be positive, got {cfg.resolution}")
    for key in ("max_train", "max_val"):
        if getattr(cfg, key) is not None and getattr(cfg, key) < 1:
            raise DatasetError(f"{cfg.dataset}: data.{key} must be positive or null, got {getattr(cfg, key)}")


