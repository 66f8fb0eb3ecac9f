"""Tests of mdmlib.data on tiny datasets built here (no internet, no real CIFAR / Fashion-MNIST)."""
from __future__ import annotations

import gzip
import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from mdmlib.config import DataConfig
from mdmlib.core.images import to_model_range, to_uint8
from mdmlib.data.datasets import DatasetError
from mdmlib.data.splits import load_split, prepare_dataset


def _prepare(tmp_path: Path, tag: str = "out", **cfg_values):
    out = tmp_path / tag
    cfg = DataConfig(**cfg_values)
    prov = prepare_dataset(cfg, out / "train.npz", out / "val.npz", out / "provenance.json")
    train, val = load_split(out / "train.npz"), load_split(out / "val.npz")
    return train, val, prov, out


def _pil_bicubic(image: np.ndarray, resolution: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((resolution, resolution), Image.Resampling.BICUBIC))


def _rows(images: np.ndarray) -> list[bytes]:
    return sorted(img.tobytes() for img in images)


# ---------------------------------------------------------------- digits


def test_digits_split_shapes_ranges_and_provenance(tmp_path):
    (xt, yt), (xv, yv), prov, out = _prepare(tmp_path, dataset="digits", val_size=300, seed=3)
    assert xt.shape == (1497, 1, 8, 8) and xv.shape == (300, 1, 8, 8)
    assert xt.dtype == np.uint8 and yt.dtype == np.int64
    assert xt.min() == 0 and xt.max() == 255  # 16 * 255 / 16
    assert set(np.unique(np.concatenate([yt, yv]))) == set(range(10))
    # the two splits partition the 1797 images exactly
    import sklearn.datasets

    expected = np.round(sklearn.datasets.load_digits().images * 255 / 16).astype(np.uint8)[:, None]
    assert _rows(np.concatenate([xt, xv])) == _rows(expected)

    saved = json.loads((out / "provenance.json").read_text())
    assert saved == prov
    assert prov["dataset"] == "digits" and prov["source"] == "sklearn.datasets.load_digits"
    assert prov["counts"] == {"train": 1497, "val": 300}
    assert prov["original"]["count"] == 1797 and prov["original"]["height"] == 8
    assert prov["num_classes"] == 10 and prov["split"]["seed"] == 3
    assert prov["files"][0]["name"] == "digits.csv.gz" and len(prov["files"][0]["sha256"]) == 64
    assert set(prov["versions"]) >= {"torch", "torchvision", "sklearn", "numpy"}
    assert prov["created_utc"].endswith("+00:00")
    assert prov["outputs"]["train"]["sha256"] == hashlib.sha256((out / "train.npz").read_bytes()).hexdigest()
    assert sorted(p.name for p in out.iterdir()) == ["provenance.json", "train.npz", "val.npz"]  # no temp files


def test_digits_split_is_deterministic_per_seed(tmp_path):
    (xa, ya), (va, _), _, _ = _prepare(tmp_path, "a", dataset="digits", val_size=100, seed=7)
    (xb, yb), (vb, _), _, _ = _prepare(tmp_path, "b", dataset="digits", val_size=100, seed=7)
    (_, _), (vc, _), _, _ = _prepare(tmp_path, "c", dataset="digits", val_size=100, seed=8)
    assert np.array_equal(xa, xb) and np.array_equal(ya, yb) and np.array_equal(va, vb)
    assert not np.array_equal(va, vc)


def test_digits_rgb_resize_and_truncation(tmp_path):
    (xt, yt), (xv, _), prov, _ = _prepare(
        tmp_path, dataset="digits", channels=3, resolution=16, val_size=200, max_train=50, max_val=20, seed=1
    )
    assert xt.shape == (50, 3, 16, 16) and xv.shape == (20, 3, 16, 16)
    assert np.array_equal(xt[:, 0], xt[:, 1]) and np.array_equal(xt[:, 0], xt[:, 2])  # grey repeated
    assert prov["counts"] == {"train": 50, "val": 20}
    # max_train keeps a prefix of the full (shuffled) train split of the same seed
    (xf, yf), (vf, _), _, _ = _prepare(tmp_path, "full", dataset="digits", channels=3, resolution=16, val_size=200, seed=1)
    assert np.array_equal(xf[:50], xt) and np.array_equal(yf[:50], yt) and np.array_equal(vf[:20], xv)
    # resizing goes through PIL bicubic: compare with an 8x8 run of the same split
    (x8, _), _, _, _ = _prepare(tmp_path, "small", dataset="digits", val_size=200, seed=1)
    assert np.array_equal(xf[0, 0], _pil_bicubic(x8[0, 0], 16))


def test_bad_config_values_raise(tmp_path):
    with pytest.raises(DatasetError, match="digits, cifar10, fashion_mnist, image_folder"):
        _prepare(tmp_path, dataset="mnist")
    with pytest.raises(DatasetError, match="val_size"):
        _prepare(tmp_path, dataset="digits", val_size=1797)
    with pytest.raises(DatasetError, match="channels"):
        _prepare(tmp_path, dataset="digits", channels=2)


# ---------------------------------------------------------------- CIFAR-10


def _write_fake_cifar(root: Path, per_batch: int = 4, test_count: int = 6, seed: int = 0) -> dict:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    written = {}
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", test_count)]:
        data = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
        written[name] = (data.reshape(n, 3, 32, 32), labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    return written


@pytest.fixture
def fake_cifar(tmp_path, monkeypatch):
    """A tiny CIFAR-10 in the python pickle format.

    torchvision checks every file against the md5 of the official release; rather than
    switching that check off, point its expected md5s at the fake files, so the real
    integrity check still runs (and still rejects a corrupted file, see below).
    """
    root = tmp_path / "cifar"
    written = _write_fake_cifar(root)
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in (root / "cifar-10-batches-py").iterdir()}
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[n, md5[n]] for n, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5["batches.meta"]})
    return root, written


def test_cifar10_official_split(tmp_path, fake_cifar):
    root, written = fake_cifar
    (xt, yt), (xv, yv), prov, _ = _prepare(tmp_path, dataset="cifar10", root=str(root), channels=3, resolution=32)
    assert xt.shape == (20, 3, 32, 32) and xv.shape == (6, 3, 32, 32)
    test_images, test_labels = written["test_batch"]
    assert np.array_equal(xv, test_images) and yv.tolist() == test_labels  # test split kept in order
    train_images = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    assert _rows(xt) == _rows(train_images)
    assert prov["num_classes"] == 10 and prov["classes"][0] == "class0"
    assert {f["name"] for f in prov["files"]} == {*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"}
    assert prov["split"]["rule"].startswith("official")


def test_cifar10_grey_is_pil_luma(tmp_path, fake_cifar):
    root, written = fake_cifar
    _, (xv, _), _, _ = _prepare(tmp_path, dataset="cifar10", root=str(root), channels=1, resolution=16, max_val=2)
    assert xv.shape == (2, 1, 16, 16)
    rgb = written["test_batch"][0][1].transpose(1, 2, 0)
    expected = Image.fromarray(rgb).convert("L").resize((16, 16), Image.Resampling.BICUBIC)
    assert np.array_equal(xv[1, 0], np.asarray(expected))


def test_cifar10_missing_and_corrupt(tmp_path, fake_cifar):
    empty = tmp_path / "nothing_here"
    empty.mkdir()
    with pytest.raises(DatasetError, match="data.download") as err:
        _prepare(tmp_path, dataset="cifar10", root=str(empty))
    assert str(empty) in str(err.value) and "cifar-10-batches-py" in str(err.value)
    root, _ = fake_cifar
    with open(root / "cifar-10-batches-py" / "data_batch_2", "ab") as f:
        f.write(b"junk")  # no longer matches its md5
    with pytest.raises(DatasetError) as err:
        _prepare(tmp_path, dataset="cifar10", root=str(root))
    assert str(root / "cifar-10-batches-py") in str(err.value)


# ---------------------------------------------------------------- Fashion-MNIST


def _write_idx(path: Path, array: np.ndarray) -> None:
    # idx: two zero bytes, type code (0x08 = uint8), number of dims, big-endian uint32 sizes, data
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _write_fake_fashion(folder: Path, n_train: int = 12, n_test: int = 5) -> dict:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    written = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        _write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        _write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
        written[split] = (images, labels)
    return written


@pytest.mark.parametrize("layout", ["torchvision", "flat"])
def test_fashion_mnist_both_layouts(tmp_path, layout):
    root = tmp_path / "fmnist"
    folder = root / "FashionMNIST" / "raw" if layout == "torchvision" else root
    written = _write_fake_fashion(folder)
    (xt, yt), (xv, yv), prov, _ = _prepare(tmp_path, dataset="fashion_mnist", root=str(root), resolution=32)
    assert xt.shape == (12, 1, 32, 32) and xv.shape == (5, 1, 32, 32)
    images, labels = written["t10k"]
    assert yv.tolist() == labels.tolist()
    assert np.array_equal(xv[0, 0], _pil_bicubic(images[0], 32))  # 28 -> 32 through PIL bicubic
    assert sorted(yt.tolist()) == sorted(written["train"][1].tolist())
    assert prov["source"] == str(folder) and len(prov["files"]) == 4
    assert prov["original"] == {"count": 17, "height": 28, "width": 28, "channels": 1}
    assert not list(folder.glob("*-ubyte"))  # decompressed copies live in a temp dir, not in the root


def test_fashion_mnist_missing_and_corrupt(tmp_path):
    root = tmp_path / "fmnist"
    root.mkdir()
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz") as err:
        _prepare(tmp_path, dataset="fashion_mnist", root=str(root))
    assert str(root) in str(err.value)
    _write_fake_fashion(root / "flat")
    (root / "flat" / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError) as err:
        _prepare(tmp_path, dataset="fashion_mnist", root=str(root / "flat"))
    assert str(root / "flat") in str(err.value)


# ---------------------------------------------------------------- image folder


def _save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _write_image_folder(root: Path) -> None:
    rng = np.random.default_rng(2)
    for rel in ("cats/a.png", "cats/b.PNG", "dogs/c.png", "dogs/nested/d.png"):
        _save_png(root / rel, rng.integers(0, 256, size=(12, 12, 3), dtype=np.uint8))
    # 30 x 10 stripes red | green | blue: the center crop keeps only the green middle
    stripes = np.zeros((10, 30, 3), dtype=np.uint8)
    stripes[:, :10, 0] = stripes[:, 10:20, 1] = stripes[:, 20:, 2] = 255
    _save_png(root / "dogs" / "stripes.png", stripes)
    (root / "notes.txt").write_text("not an image, ignored")


def test_image_folder_labels_crop_and_split(tmp_path):
    root = tmp_path / "images"
    _write_image_folder(root)
    (xt, yt), (xv, yv), prov, _ = _prepare(
        tmp_path, dataset="image_folder", root=str(root), channels=3, resolution=4, val_size=2
    )
    assert xt.shape == (3, 3, 4, 4) and xv.shape == (2, 3, 4, 4)
    assert prov["classes"] == ["cats", "dogs"] and prov["num_classes"] == 2
    assert sorted(np.concatenate([yt, yv]).tolist()) == [0, 0, 1, 1, 1]
    all_images = np.concatenate([xt, xv])
    green = np.zeros((3, 4, 4), dtype=np.uint8)
    green[1] = 255
    assert any(np.array_equal(img, green) for img in all_images)  # center crop, then resize
    assert prov["num_files"] == 5 and {f["name"] for f in prov["files"]} >= {"dogs/nested/d.png"}
    assert prov["original"]["max_width"] == 30 and prov["original"]["min_height"] == 10


def test_image_folder_flat_is_unlabelled_and_grey(tmp_path):
    root = tmp_path / "flat"
    for i in range(4):
        _save_png(root / f"img{i}.png", np.full((8, 8, 3), 40 * i, dtype=np.uint8))
    (xt, yt), (xv, yv), prov, _ = _prepare(tmp_path, dataset="image_folder", root=str(root), resolution=8, val_size=1)
    assert xt.shape == (3, 1, 8, 8) and set(yt.tolist() + yv.tolist()) == {-1}
    assert prov["num_classes"] == 0
    assert sorted(int(x[0, 0, 0]) for x in np.concatenate([xt, xv])) == [0, 40, 80, 120]


def test_image_folder_errors(tmp_path):
    root = tmp_path / "images"
    _write_image_folder(root)
    bad = root / "cats" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(DatasetError) as err:
        _prepare(tmp_path, dataset="image_folder", root=str(root), val_size=1)
    assert str(bad) in str(err.value)
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"\.png") as err:
        _prepare(tmp_path, dataset="image_folder", root=str(empty))
    assert str(empty) in str(err.value)
    with pytest.raises(DatasetError, match="data.root"):
        _prepare(tmp_path, dataset="image_folder")


# ---------------------------------------------------------------- load_split


def _savez(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


GOOD_IMAGES = np.zeros((3, 1, 4, 4), dtype=np.uint8)
GOOD_LABELS = np.arange(3, dtype=np.int64)


@pytest.mark.parametrize(
    "arrays",
    [
        {"images": GOOD_IMAGES},  # no labels
        {"images": GOOD_IMAGES.astype(np.float32), "labels": GOOD_LABELS},
        {"images": GOOD_IMAGES, "labels": GOOD_LABELS.astype(np.int32)},
        {"images": GOOD_IMAGES[:, 0], "labels": GOOD_LABELS},  # ndim 3
        {"images": GOOD_IMAGES, "labels": GOOD_LABELS[:2]},
        {"images": np.zeros((3, 2, 4, 4), np.uint8), "labels": GOOD_LABELS},  # C = 2
        {"images": np.zeros((3, 1, 4, 5), np.uint8), "labels": GOOD_LABELS},  # not square
    ],
)
def test_load_split_refuses_malformed_arrays(tmp_path, arrays):
    path = _savez(tmp_path / "split.npz", **arrays)
    with pytest.raises(DatasetError) as err:
        load_split(path)
    assert str(path) in str(err.value)


def test_load_split_refuses_bad_files(tmp_path):
    good = _savez(tmp_path / "good.npz", images=GOOD_IMAGES, labels=GOOD_LABELS)
    images, labels = load_split(good)
    assert np.array_equal(images, GOOD_IMAGES) and np.array_equal(labels, GOOD_LABELS)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    flipped = tmp_path / "flipped.npz"  # same length, damaged payload: CRC check fails
    damaged = bytearray(data)
    damaged[len(data) // 3] ^= 0xFF
    flipped.write_bytes(bytes(damaged))
    text = tmp_path / "text.npz"
    text.write_text("hello")
    npy = tmp_path / "plain.npy"
    np.save(npy, GOOD_IMAGES)
    for path in (truncated, flipped, text, npy, tmp_path / "missing.npz"):
        with pytest.raises(DatasetError) as err:
            load_split(path)
        assert str(path) in str(err.value), path


# ---------------------------------------------------------------- value ranges


def test_to_model_range_and_back():
    u = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    x = to_model_range(u)
    assert x.dtype == torch.float32 and x.min() == -1 and x.max() == 1
    assert torch.equal(x, to_model_range(torch.from_numpy(u)))
    back = to_uint8(x).to(torch.int64) - torch.from_numpy(u).to(torch.int64)
    # truncation (ADM's evaluator) in float32 returns u or u - 1, and the endpoints exactly
    assert set(back.unique().tolist()) <= {-1, 0} and back.flatten()[[0, 255]].tolist() == [0, 0]
    mid_bin = (torch.from_numpy(u).float() + 0.5) / 127.5 - 1
    assert torch.equal(to_uint8(mid_bin), torch.from_numpy(u))
    assert to_uint8(torch.tensor([-3.0, 2.0])).tolist() == [0, 255]
    with pytest.raises(TypeError):
        to_model_range(np.zeros((1, 1, 2, 2), dtype=np.float32))
