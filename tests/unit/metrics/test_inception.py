"""Inception metrics path with randomly initialised weights (nothing is downloaded).

The weights are random, so these tests check plumbing, not values: shapes, the sFID hook,
batching, greyscale input, the metric steps, the missing-weights error, and cross-checks
of our formulas against torch-fidelity's precision/recall and clean-fid's Frechet distance.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
from cleanfid.fid import frechet_distance as cleanfid_frechet_distance
from torch_fidelity.metric_prc import prc_features_to_metric

from mdmlib.config import FeatureNetConfig, MetricsConfig, load_config
from mdmlib.metrics.features import FeatureNet, extract_features, save_feature_net
from mdmlib.metrics.fid import feature_statistics, frechet_distance, precision_recall
from mdmlib.metrics.inception import SPATIAL_DIM, InceptionFeatures
from mdmlib.metrics.inception_weights import WEIGHTS_FILE, WEIGHTS_URL
from mdmlib.metrics.reference import (
    ClassifierFeatures,
    compute_reference,
    load_reference,
    make_extractor,
)
from mdmlib.metrics.series import evaluate_samples


@pytest.fixture(scope="module")
def weights_path(tmp_path_factory):
    """A state dict of torch-fidelity's Inception with random weights, under the real file name."""
    with pytest.MonkeyPatch.context() as mp:  # build the module tree without fetching or loading weights
        mp.setattr(tf_inception, "load_state_dict_from_url", lambda *args, **kwargs: None)
        mp.setattr(tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = tf_inception.FeatureExtractorInceptionV3("random", ["2048"])
            for module in net.modules():  # He init keeps activations O(1) through ~40 conv layers
                if isinstance(module, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    path = tmp_path_factory.mktemp("weights") / WEIGHTS_FILE
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def extractor(weights_path):
    return InceptionFeatures(weights_path)


@pytest.fixture(scope="module")
def grey_images():
    return np.random.default_rng(0).integers(0, 256, size=(6, 1, 16, 16), dtype=np.uint8)


@pytest.fixture(scope="module")
def features(extractor, grey_images):
    """Features of the six images in one batch, with Mixed_6d's whole output captured alongside."""
    mixed_6d = []
    handle = extractor.net.Mixed_6d.register_forward_hook(lambda module, inputs, output: mixed_6d.append(output))
    try:
        pool, spatial = extractor.extract(grey_images, batch_size=6)
    finally:
        handle.remove()
    return pool, spatial, mixed_6d[0]


def test_feature_shapes_and_weights_from_the_file(extractor, features, weights_path):
    pool, spatial, _ = features
    assert pool.shape == (6, 2048) and spatial.shape == (6, SPATIAL_DIM) and SPATIAL_DIM == 17 * 17 * 7 == 2023
    assert pool.dtype == spatial.dtype == np.float64
    assert pool.std(axis=0).mean() > 1e-3 and spatial.std(axis=0).mean() > 1e-3  # not collapsed to a constant
    stored = torch.load(weights_path, weights_only=True)
    torch.testing.assert_close(extractor.net.Mixed_6d.branch1x1.conv.weight, stored["Mixed_6d.branch1x1.conv.weight"])


def test_hook_captures_mixed_6d_branch1x1_channels_last(extractor, features):
    _, spatial, mixed_6d = features
    module = extractor.spatial_module
    assert module is extractor.net.Mixed_6d.branch1x1
    assert (module.conv.in_channels, module.conv.out_channels, module.conv.kernel_size) == (768, 192, (1, 1))
    assert module.bn.eps == pytest.approx(1e-3)
    # InceptionC concatenates branch1x1 first, so its channels are Mixed_6d's first 192.
    assert mixed_6d.shape[1:] == (768, 17, 17)
    expected = mixed_6d[:, :7].permute(0, 2, 3, 1).reshape(6, -1).double().numpy()  # index (h * 17 + w) * 7 + c
    np.testing.assert_array_equal(spatial, expected)


def test_batches_and_greyscale_give_the_same_features(extractor, grey_images, features):
    pool, spatial, _ = features
    pool_4, spatial_4 = extractor.extract(grey_images, batch_size=4)  # batches of 4 and 2
    np.testing.assert_allclose(pool_4, pool, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(spatial_4, spatial, rtol=1e-4, atol=1e-5)
    pool_rgb, spatial_rgb = extractor.extract(np.repeat(grey_images[:2], 3, axis=1), batch_size=2)
    np.testing.assert_allclose(pool_rgb, pool[:2], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(spatial_rgb, spatial[:2], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        extractor.extract(grey_images.astype(np.float32))


class _Precomputed:
    """The fixture's Inception features behind the extractor interface, cut to their first
    dims: at full size (2048-d, 2023-d) scipy's sqrtm takes minutes on two cores, and a
    second Inception pass over the same images would only repeat the batching test."""

    name, frechet_distance = InceptionFeatures.name, staticmethod(InceptionFeatures.frechet_distance)

    def __init__(self, images, pool, spatial, dims=40):
        self.images, self.pool, self.spatial, self.dims = images, pool, spatial, dims

    def extract(self, images, batch_size=500, device="cpu"):
        assert np.array_equal(images, self.images)
        return self.pool[:, : self.dims], self.spatial[:, : self.dims]


def test_metric_steps_give_zero_fid_for_a_set_against_itself(grey_images, features, tmp_path):
    pool, spatial, _ = features
    extractor = _Precomputed(grey_images, pool, spatial)
    compute_reference(extractor, grey_images, tmp_path / "ref.npz")
    reference = load_reference(tmp_path / "ref.npz")
    assert reference["feature_network"] == InceptionFeatures.name and reference["num_reference"] == 6
    result = evaluate_samples(extractor, reference, grey_images, block_size=4)
    assert abs(result.fid) < 1e-6 * np.trace(reference["pool_sigma"])
    assert abs(result.sfid) < 1e-6 * np.trace(reference["spatial_sigma"])
    assert result.precision == result.recall == 1.0 and result.num_samples == 6
    assert result.feature_network == InceptionFeatures.name
    with pytest.raises(ValueError, match="computed with"):
        evaluate_samples(extractor, reference, grey_images, feature_network="classifier CNN")


# ----------------------------------------------------------------------------- cross-checks with the libraries


def _random_features(dim, n_real=300, n_fake=200, scale=1.3, shift=0.7, seed=0):
    rng = np.random.default_rng(seed)
    real = rng.standard_normal((n_real, dim))
    fake = rng.standard_normal((n_fake, dim)) * scale + shift
    return real, fake


@pytest.mark.parametrize("save_cpu_ram", [False, True], ids=["full", "part"])
def test_precision_recall_agree_with_torch_fidelity_prc(save_cpu_ram):
    real, fake = _random_features(2048, scale=1.0, shift=0.1)  # P, R near 0.45: neither saturated
    ours = precision_recall(real, fake, k=3, block_size=64)
    theirs = prc_features_to_metric(
        torch.from_numpy(fake), torch.from_numpy(real),  # torch-fidelity: input 1 is generated, input 2 real
        prc_neighborhood=3, prc_batch_size=64, save_cpu_ram=save_cpu_ram, verbose=False,
    )
    assert 0.2 < ours[0] < 0.8 and 0.2 < ours[1] < 0.8
    # torch-fidelity averages in float32; 1e-6 is far below one sample's 1/300.
    assert ours == pytest.approx((theirs["precision"], theirs["recall"]), abs=1e-6)


@pytest.mark.parametrize("n", [500, 30], ids=["full_rank", "singular"])
def test_frechet_distance_agrees_with_clean_fid(n):
    real, fake = _random_features(64, n_real=n, n_fake=n)
    stats = (*feature_statistics(fake), *feature_statistics(real))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # clean-fid's sqrtm(disp=False) is deprecated in SciPy 1.17
        expected = float(cleanfid_frechet_distance(*stats))
    assert frechet_distance(*stats) == pytest.approx(expected, rel=1e-9)
    assert InceptionFeatures.frechet_distance(*stats) == pytest.approx(expected, rel=1e-9)
    assert expected > 10


# ----------------------------------------------------------------------------- configuration


def test_missing_weights_fail_at_config_load_naming_the_file(tmp_path):
    missing = tmp_path / "nowhere" / WEIGHTS_FILE
    with pytest.raises(ValueError) as err:
        load_config({"metrics": {"features": "inception", "inception_weights": str(missing)}})
    message = str(err.value)
    assert "config key 'metrics.inception_weights'" in message and str(missing) in message
    assert WEIGHTS_URL in message and WEIGHTS_FILE in message
    with pytest.raises(ValueError, match=WEIGHTS_FILE):
        InceptionFeatures(missing)


def test_present_weights_load_and_pick_the_inception_extractor(weights_path, tmp_path):
    cfg = load_config({"metrics": {"features": "inception", "inception_weights": str(weights_path)}})
    assert cfg.metrics.inception_weights == str(weights_path)
    assert isinstance(make_extractor(cfg.metrics), InceptionFeatures)
    # The classifier default ignores the key; a weights file that is no state dict is refused by name.
    classifier_cfg = load_config({"metrics": {"inception_weights": str(tmp_path / "absent.pth")}})
    assert classifier_cfg.metrics.features == "classifier"
    foreign = tmp_path / "foreign.pth"
    foreign.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="foreign.pth"):
        InceptionFeatures(foreign)


def test_classifier_stays_the_default_extractor(tmp_path):
    cfg = MetricsConfig()
    assert cfg.features == "classifier" and cfg.inception_weights is None
    with pytest.raises(ValueError, match="feature network"):
        make_extractor(cfg)
    net = FeatureNet(FeatureNetConfig(width=8, feature_dim=8, spatial_channels=2), 1, 8, 10).eval()
    info = {"task": "classification", "num_classes": 10, "feature_dim": 8, "spatial_dim": net.spatial_dim}
    save_feature_net(tmp_path / "net.pt", net, info, net.cfg)
    classifier = make_extractor(cfg, tmp_path / "net.pt", "digits")
    assert isinstance(classifier, ClassifierFeatures)
    assert classifier.name == "classifier CNN (digits labels, 8-d pool, 128-d spatial)"
    images = np.random.default_rng(0).integers(0, 256, size=(4, 1, 8, 8), dtype=np.uint8)
    for a, b in zip(classifier.extract(images), extract_features(net, images)):
        np.testing.assert_array_equal(a, b)
