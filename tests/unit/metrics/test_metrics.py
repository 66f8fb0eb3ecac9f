"""Metric formulas against closed forms and hand-worked examples; the feature network on sklearn digits."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy import linalg
from scipy.spatial.distance import cdist

from mdmlib.config import FeatureNetConfig
from mdmlib.metrics import fid as fid_module
from mdmlib.metrics.features import (
    FeatureNet,
    extract_features,
    feature_network_name,
    load_feature_net,
    save_feature_net,
    train_feature_net,
)
from mdmlib.metrics.fid import (
    feature_statistics,
    frechet_distance,
    knn_radii,
    precision_recall,
)
from mdmlib.metrics.reference import compute_reference, load_reference
from mdmlib.metrics.series import MetricResult, evaluate_samples

# ----------------------------------------------------------------------------- Frechet distance


def test_fid_matches_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    mu1, s1 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 2.0, 0.5, 1.5])
    mu2, s2 = np.array([0.5, 1.0, 1.5, 3.0]), np.array([2.0, 1.0, 0.5, 3.0])
    a = mu1 + rng.standard_normal((200_000, 4)) * np.sqrt(s1)
    b = mu2 + rng.standard_normal((200_000, 4)) * np.sqrt(s2)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))  # = 1.1005
    got = frechet_distance(*feature_statistics(a), *feature_statistics(b))
    assert got == pytest.approx(expected, abs=0.02)


def _random_spd(rng, d):
    m = rng.standard_normal((d, d))
    return m @ m.T + 0.1 * np.eye(d)


def test_fid_matches_eigendecomposition_for_full_covariances():
    rng = np.random.default_rng(1)
    d = 6
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    sigma1, sigma2 = _random_spd(rng, d), _random_spd(rng, d)
    # tr sqrt(sigma1 sigma2) = tr sqrt(sqrt(sigma1) sigma2 sqrt(sigma1)), a symmetric PSD matrix.
    w, v = np.linalg.eigh(sigma1)
    root1 = v @ np.diag(np.sqrt(w)) @ v.T
    tr_covmean = np.sum(np.sqrt(np.linalg.eigvalsh(root1 @ sigma2 @ root1)))
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu2, sigma2, mu1, sigma1) == pytest.approx(expected, rel=1e-9)


def test_fid_of_a_set_with_itself_is_zero():
    feats = np.random.default_rng(2).standard_normal((1000, 5)) @ np.diag([1, 2, 3, 4, 5])
    mu, sigma = feature_statistics(feats)
    assert mu.dtype == sigma.dtype == np.float64 and sigma.shape == (5, 5)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-9


def test_fid_refuses_large_imaginary_parts_and_shape_mismatch():
    # Not a covariance (negative variance): sqrtm(diag(-1, 1)) = diag(i, 1).
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.diag([-1.0, 1.0]))
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_fid_retries_with_offset_when_sqrtm_is_not_finite(monkeypatch):
    calls = []
    real_sqrtm = linalg.sqrtm

    def flaky_sqrtm(a):
        calls.append(a.copy())
        return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(fid_module.linalg, "sqrtm", flaky_sqrtm)
    sigma = np.diag([1.0, 4.0])
    with pytest.warns(UserWarning, match="singular"):
        got = frechet_distance(np.zeros(2), sigma, np.zeros(2), sigma)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (sigma + 1e-6 * np.eye(2)) @ (sigma + 1e-6 * np.eye(2)))
    assert got == pytest.approx(-2 * 2 * 1e-6, abs=1e-12)  # tr(s)+tr(s)-2 tr(s + eps I)


# ----------------------------------------------------------------------------- precision / recall


def test_knn_radius_semantics_on_a_line():
    points = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]])
    # Sorted squared distances from 0: [0, 1, 9, 36, 100]; from 3: [0, 4, 9, 9, 49].
    np.testing.assert_array_equal(knn_radii(points, k=1)[[0, 2]], [1.0, 4.0])
    np.testing.assert_array_equal(knn_radii(points, k=2)[[0, 2]], [9.0, 9.0])
    np.testing.assert_array_equal(knn_radii(points, k=3)[[0, 2]], [36.0, 9.0])
    np.testing.assert_array_equal(knn_radii(points, k=4)[[0, 2]], [100.0, 49.0])
    # An exact duplicate is a neighbour at distance 0.
    np.testing.assert_array_equal(knn_radii(np.array([[0.0], [0.0], [5.0]]), k=1), [0.0, 0.0, 25.0])
    with pytest.raises(ValueError, match="k < N"):
        knn_radii(points, k=5)


def _grid(n=5):
    return np.array([[i, j] for i in range(n) for j in range(n)], dtype=np.float64)


def test_grid_radii_and_precision_recall_by_hand():
    real = _grid()  # 5x5 unit grid: r^2 = 1 (3rd neighbour at distance 1), corners r^2 = 2
    radii = knn_radii(real, k=3).reshape(5, 5)
    expected = np.ones((5, 5))
    expected[[0, 0, 4, 4], [0, 4, 0, 4]] = 2.0
    np.testing.assert_array_equal(radii, expected)
    square = np.array([[0, 0], [0.1, 0], [0, 0.1], [0.1, 0.1]])
    fake = np.concatenate([square + 2.0, square + 100.0])  # 4 on the grid's middle, 4 far away; fake r^2 = 0.02
    precision, recall = precision_recall(real, fake, k=3)
    assert precision == 0.5  # the 4 near fakes lie in the ball of grid point (2, 2)
    assert recall == 1 / 25  # only grid point (2, 2) is inside a (tiny) fake ball


def test_ball_boundary_counts_as_inside():
    real = _grid()
    fake = np.array([[-1, -1], [-1.2, -1], [2.5, 2.5], [2, 5], [2, 5.01]])
    # (-1,-1): d^2 = 2 to corner (0,0) whose r^2 = 2 -> in; (2,5): d^2 = 1 to edge point (2,4), r^2 = 1 -> in.
    precision, _ = precision_recall(real, fake, k=3)
    assert precision == 3 / 5


def _brute_force_pr(real, fake, k):
    def radii(x):
        return np.sort(cdist(x, x, "sqeuclidean"), axis=1)[:, k]

    d2 = cdist(fake, real, "sqeuclidean")
    precision = np.mean((d2 <= radii(real)[None, :]).any(axis=1))
    recall = np.mean((d2 <= radii(fake)[:, None]).any(axis=0))
    return precision, recall, radii(real)


@pytest.mark.parametrize("block_size", [1, 7, 10, 50, 103, 10_000])
def test_blocked_matches_brute_force(block_size):
    rng = np.random.default_rng(3)
    real = rng.standard_normal((103, 8))
    fake = rng.standard_normal((97, 8)) * 1.3 + 0.4
    exp_p, exp_r, exp_radii = _brute_force_pr(real, fake, k=3)
    np.testing.assert_allclose(knn_radii(real, k=3, block_size=block_size), exp_radii, rtol=1e-12)
    assert precision_recall(real, fake, k=3, block_size=block_size) == (exp_p, exp_r)
    assert 0.2 < exp_p < 1 and 0.2 < exp_r < 1  # a case where both fractions are informative


def test_precision_and_recall_swap_with_the_roles():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((60, 3)), rng.standard_normal((80, 3)) + 0.5
    p_ab, r_ab = precision_recall(a, b)
    p_ba, r_ba = precision_recall(b, a)
    assert (p_ab, r_ab) == (r_ba, p_ba)


# ----------------------------------------------------------------------------- feature network


def _quiet(line: str) -> None:
    pass


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images * (255 / 16)).astype(np.uint8)[:, None]  # 1797 x 1 x 8 x 8
    order = np.random.default_rng(0).permutation(len(images))
    return images[order], d.target[order]


# ~160 steps; val accuracy 0.97-0.98 over seeds 0-3
FAST = FeatureNetConfig(epochs=10, batch_size=64, learning_rate=2e-3, seed=0)


@pytest.fixture(scope="module")
def digits_net():
    images, labels = _digits()
    train, val = slice(0, 1000), slice(1000, None)  # 797 validation images: more than the 128 sFID dims
    net, info = train_feature_net(FAST, images[train], labels[train], images[val], labels[val], log=_quiet)
    return net, info, images[train], images[val]


def test_classifier_learns_digits(digits_net):
    net, info, _, val = digits_net
    assert info["task"] == "classification" and info["num_classes"] == 10
    assert info["val_accuracy"] > 0.9, info
    assert info["epochs"] == FAST.epochs and info["num_val"] == len(val)
    assert not net.training
    pool, spatial = extract_features(net, val[:5])
    assert pool.shape == (5, 64) and spatial.shape == (5, 8 * 8 * 2)
    assert pool.dtype == spatial.dtype == np.float64
    assert feature_network_name(info, "digits") == "classifier CNN (digits labels, 64-d pool, 128-d spatial)"


def test_training_is_deterministic_and_logs_every_epoch():
    images, labels = _digits()
    cfg = FeatureNetConfig(epochs=2, batch_size=64, seed=5)
    lines = []
    net_a, _ = train_feature_net(cfg, images[:300], labels[:300], images[300:400], labels[300:400], log=lines.append)
    net_b, _ = train_feature_net(cfg, images[:300], labels[:300], images[300:400], labels[300:400], log=_quiet)
    assert sum("epoch" in line for line in lines) == 2
    for (name, a), b in zip(net_a.state_dict().items(), net_b.state_dict().values()):
        assert torch.equal(a, b), name


def test_rotation_task_on_unlabeled_images_beats_chance():
    images, _ = _digits()
    unlabeled = -np.ones(len(images), dtype=np.int64)
    cfg = FeatureNetConfig(epochs=6, batch_size=64, learning_rate=2e-3, seed=0)  # val acc 0.5-0.7 over seeds
    net, info = train_feature_net(cfg, images[:1000], unlabeled[:1000], images[1000:], unlabeled[1000:], log=_quiet)
    assert info["task"] == "rotation" and info["num_classes"] == 4
    assert info["val_accuracy"] > 0.4, info  # chance is 0.25
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 4)
    assert feature_network_name(info).startswith("rotation-prediction CNN")


def test_spatial_features_are_channels_last_first_channels():
    net = FeatureNet(FeatureNetConfig(width=16, spatial_channels=3), in_channels=3, resolution=32, num_classes=4).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        spatial_map = net.to_spatial(x)
        _, spatial = net.features(x)
    assert spatial_map.shape == (2, 64, 8, 8) and net.spatial_dim == 8 * 8 * 3
    torch.testing.assert_close(spatial.reshape(2, 8, 8, 3), spatial_map[:, :3].permute(0, 2, 3, 1))


def test_features_do_not_depend_on_batch_size(digits_net):
    net, _, _, val = digits_net
    whole = extract_features(net, val[:50], batch_size=500)
    pieces = extract_features(net, val[:50], batch_size=7)
    for a, b in zip(whole, pieces):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="1 x 8 x 8"):
        extract_features(net, np.zeros((2, 3, 8, 8), np.uint8))


def test_save_load_round_trip_and_corrupt_files(digits_net, tmp_path):
    net, info, _, val = digits_net
    path = tmp_path / "nets" / "feature_net.pt"
    save_feature_net(path, net, info, FAST)
    assert sorted(p.name for p in path.parent.iterdir()) == ["feature_net.pt"]  # no temporary left behind
    loaded, loaded_info = load_feature_net(path)
    assert loaded_info == info and not loaded.training
    for a, b in zip(extract_features(net, val), extract_features(loaded, val)):
        np.testing.assert_array_equal(a, b)

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.pt"):
        load_feature_net(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": net.state_dict()}, foreign)
    with pytest.raises(ValueError, match="foreign.pt"):
        load_feature_net(foreign)
    with pytest.raises(ValueError, match="missing.pt"):
        load_feature_net(tmp_path / "missing.pt")


# ----------------------------------------------------------------------------- reference and calculation steps


def test_reference_round_trip_and_corrupt_files(digits_net, tmp_path):
    net, _, _, val = digits_net
    pool, spatial = extract_features(net, val)
    for name in ("ref.npz", "ref_without_suffix"):
        path = tmp_path / name
        compute_reference(net, val, path, "test net", batch_size=128)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"ref.npz", name})  # exactly this name
        ref = load_reference(path)
        np.testing.assert_array_equal(ref["pool_features"], pool)
        np.testing.assert_allclose(ref["pool_sigma"], np.cov(pool, rowvar=False), rtol=1e-12)
        np.testing.assert_allclose(ref["spatial_mu"], spatial.mean(0), rtol=1e-12)
        assert ref["num_reference"] == len(val) and ref["feature_network"] == "test net"

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes((tmp_path / "ref.npz").read_bytes()[:5000])
    with pytest.raises(ValueError, match="truncated.npz"):
        load_reference(truncated)
    partial = tmp_path / "partial.npz"
    np.savez(partial, pool_mu=np.zeros(3))
    with pytest.raises(ValueError, match="partial.npz"):
        load_reference(partial)


def test_evaluate_samples_against_own_reference_and_noise(digits_net, tmp_path):
    net, info, train, val = digits_net
    name = feature_network_name(info, "digits")
    compute_reference(net, val, tmp_path / "val.npz", name)
    ref = load_reference(tmp_path / "val.npz")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the identical-statistics case must not need the eps retry
        same = evaluate_samples(net, ref, val, name)
    assert isinstance(same, MetricResult)
    scale = np.trace(ref["pool_sigma"])
    assert abs(same.fid) < 1e-6 * scale and abs(same.sfid) < 1e-6 * np.trace(ref["spatial_sigma"])
    assert same.precision == 1.0 and same.recall == 1.0
    assert same.num_samples == same.num_reference == len(val)
    assert same.to_dict()["feature_network"] == name

    real = evaluate_samples(net, ref, train, name)  # other real digits: the finite-sample floor
    noise_images = np.random.default_rng(0).integers(0, 256, size=val.shape, dtype=np.uint8)
    noise = evaluate_samples(net, ref, noise_images, name, block_size=100)
    assert noise.fid > 10 * real.fid and noise.sfid > 10 * real.sfid
    # Both drop, but not to 0: noise features bunch up, and a bunch can sit inside the large
    # ball of a real outlier (a known weakness of k-NN precision). Seeds 0-2 give
    # noise P/R of 0.48-0.65 / 0.14-0.26 against 0.94-0.96 / 0.87-0.89 for real digits.
    assert noise.precision < real.precision - 0.2 and noise.recall < 0.5 * real.recall
    with pytest.raises(ValueError, match="computed with"):
        evaluate_samples(net, ref, val, "some other network")


def test_the_reference_is_the_split_the_config_names_and_says_so(digits_net, tmp_path):
    from mdmlib.metrics.reference import reference_images

    net, info, train, val = digits_net
    assert reference_images("training", val, train) is train and reference_images("validation", val, train) is val
    both = reference_images("both", val, train)
    assert len(both) == len(val) + len(train)
    compute_reference(net, both, tmp_path / "both.npz", "net", split="both")
    ref = load_reference(tmp_path / "both.npz")
    assert ref["reference_split"] == "both" and ref["num_reference"] == len(both)
    with pytest.raises(ValueError, match="metrics.reference"):
        reference_images("test", val, train)
