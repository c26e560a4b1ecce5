"""minidl.metrics.fid: the Fréchet distance against its closed form for commuting
covariances and against an eigenvalue form of its trace term for any covariances;
FID(real, real) small against FID(real, noised); FID growing monotonically as images are
blurred or noised (the sanity check of Heusel et al.), on fixed random conv features and
small N so that it runs in seconds; the feature network's checksummed cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import seeds

import minidl as md
from benchmarks import fid_check
from benchmarks.fid_check import blur, noise
from minidl import nn
from minidl.data import LabeledData, data_root
from minidl.metrics import FID, FeatureNet, feature_network, frechet_distance
from minidl.metrics import fid as fid_module
from minidl.metrics.fid import fid

pytest.importorskip("scipy")

MNIST = [
    "mnist/train-images-idx3-ubyte.gz",
    "mnist/train-labels-idx1-ubyte.gz",
    "mnist/t10k-images-idx3-ubyte.gz",
    "mnist/t10k-labels-idx1-ubyte.gz",
]
needs_mnist = pytest.mark.skipif(
    not all((Path(data_root()) / f).is_file() for f in MNIST), reason="MNIST is not in data_root()"
)


def random_rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diagonal(r))


# --------------------------------------------------------------------------- the distance
@given(seeds, st.integers(1, 12))
def test_closed_form_for_commuting_covariances(seed, d):
    """S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T commute, (S1 S2)^(1/2) = Q diag(sqrt(ab)) Q^T,
    so FID = |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0.1, 4, d), rng.uniform(0.1, 4, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    q = random_rotation(rng, d)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-7, abs=1e-8)
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-7, abs=1e-8)


@given(seeds, st.integers(1, 10))
def test_trace_term_against_eigenvalues_for_any_covariances(seed, d):
    """For PSD S1, S2 (not commuting): S1 S2 is similar to S1^(1/2) S2 S1^(1/2), which is
    symmetric PSD, so Tr((S1 S2)^(1/2)) = sum of the square roots of its eigenvalues."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    s1, s2 = a @ a.T + 0.1 * np.eye(d), b @ b.T + 0.1 * np.eye(d)
    w, v = np.linalg.eigh(s1)
    root1 = v @ np.diag(np.sqrt(w)) @ v.T
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ s2 @ root1), 0, None)).sum()
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_root
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6, abs=1e-7)


def test_one_dimensional_gaussians_and_identity():
    # N(0, 1) against N(3, 4): 3^2 + (1 - 2)^2 = 10
    assert frechet_distance(np.array([0.0]), np.eye(1), np.array([3.0]), 4 * np.eye(1)) == (
        pytest.approx(10.0)
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 6))
    mu, sigma = x.mean(0), np.cov(x, rowvar=False)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-6)


def test_singular_covariances_give_a_finite_distance():
    """5 samples in 20 dimensions: rank-4 covariances, a singular product (eps * I added)."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((5, 20)), rng.standard_normal((5, 20)) + 1
    mx, sx = fid_module.gaussian_stats(x)
    my, sy = fid_module.gaussian_stats(y)
    value = frechet_distance(mx, sx, my, sy)
    assert np.isfinite(value) and value > ((mx - my) ** 2).sum() - 1e-6
    zero = np.zeros((3, 3))  # all features dead: sqrtm(0) is non-finite in scipy's algorithm
    assert frechet_distance(np.zeros(3), zero, np.ones(3), zero) == pytest.approx(3.0, abs=1e-5)


def test_rejects_bad_shapes_and_a_non_psd_covariance():
    with pytest.raises(ValueError, match=r"frechet_distance: means .* must be"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="imaginary part"):
        frechet_distance(np.zeros(2), -np.eye(2), np.zeros(2), np.eye(2))


# --------------------------------------------------------------------------- fid()
def random_conv_features() -> nn.Module:
    """Fixed random features: conv 5x5 (16) -> ReLU -> 4x4 average pool -> flatten (N, 144)."""
    md.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 16, 5, stride=2), nn.ReLU(), nn.AvgPool2d(4), nn.Flatten())
    return net.eval()


@pytest.fixture(scope="module")
def mnist_slices() -> dict[str, np.ndarray]:
    train, test = md.data.load_mnist("train"), md.data.load_mnist("test")
    return {
        "train_x": train.data[:1000].astype(np.float32) / 255,
        "train_y": train.targets[:1000],
        "test_x": test.data[:400].astype(np.float32) / 255,
    }


@needs_mnist
def test_fid_grows_monotonically_with_blur_and_noise(mnist_slices):
    """The published sanity check, on fixed random conv features and N = 400."""
    net, real, other = random_conv_features(), mnist_slices["train_x"], mnist_slices["test_x"]
    n = len(other)
    for disturb, levels in ((blur, [0, 0.5, 1, 2, 3]), (noise, [0, 0.2, 0.3, 0.4, 0.6])):
        values = [fid(real, disturb(other, level), net, n=n).fid for level in levels]
        assert np.all(np.diff(values) > 0), f"{disturb.__name__}: {values}"


@needs_mnist
def test_fid_of_real_against_real_is_small_beside_noised(mnist_slices):
    """A FeatureNet trained 1 epoch on 1,000 images (a weak one, to keep the test fast): its
    features already tell held-out real digits (FID small) from noised ones (std 0.5)."""
    d = mnist_slices
    net = fid_module.train_feature_network(d["train_x"][:1000], d["train_y"][:1000], epochs=1)
    real_real = fid(d["train_x"], d["test_x"], net.features, n=400)
    real_noised = fid(d["train_x"], noise(d["test_x"], 0.5), net.features, n=400)
    assert isinstance(real_real, FID) and real_real.n == 400 and "N=400" in str(real_real)
    assert 0 < real_real.fid < real_noised.fid / 10


def test_fid_takes_uint8_and_names_a_short_sample():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    net = random_conv_features()
    as_float = fid(images, images[::-1], net, n=30)
    assert as_float.fid == pytest.approx(0.0, abs=1e-6)  # same set, another order
    with pytest.raises(ValueError, match=r"fid: 30 real images, fewer than n=10000"):
        fid(images, images, net)


@settings(max_examples=5, deadline=None)
@given(seeds)
def test_feature_net_shapes(seed):
    md.manual_seed(seed)
    net = FeatureNet().eval()
    x = md.tensor(np.random.default_rng(seed).random((3, 1, 28, 28)).astype(np.float32))
    assert net.features(x).shape == (3, fid_module.FEATURE_DIM)
    assert net(x).shape == (3, 10)


# --------------------------------------------------------------------------- the cache
@needs_mnist
def test_feature_network_is_trained_once_cached_and_verified(tmp_path, monkeypatch, mnist_slices):
    """Trained when absent (here on a 1,000-image slice, 1 epoch), then read from the
    checkpoint without training; a damaged checkpoint is retrained, with a warning."""
    d = mnist_slices
    small = LabeledData(d["train_x"], d["train_y"], [str(i) for i in range(10)])
    monkeypatch.setattr(md.data, "load_mnist", lambda split="train", root=None: small)
    monkeypatch.setitem(fid_module.TRAIN_CONFIG, "mnist", {"epochs": 1, "lr": 3e-3})
    net = feature_network("mnist", cache_dir=tmp_path, log=False)
    path = fid_module.checkpoint_path("mnist", tmp_path)
    assert path.is_file() and net.info["epochs"] == 1 and 0 < net.info["test_accuracy"] <= 1

    def no_training(*args, **kwargs):
        raise AssertionError("feature_network trained although a valid checkpoint exists")

    monkeypatch.setattr(fid_module, "train_feature_network", no_training)
    again = feature_network("mnist", cache_dir=tmp_path)
    x = md.tensor(d["test_x"][:8, None])
    np.testing.assert_array_equal(again.features(x).numpy(), net.features(x).numpy())
    assert again.info == net.info

    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(AssertionError, match="trained although"), pytest.warns(UserWarning):
        feature_network("mnist", cache_dir=tmp_path)  # refuses the damaged file, retrains


@pytest.mark.filterwarnings("ignore:.*is not the published")
def test_pneumoniamnist_feature_network_from_a_medmnist_file(tmp_path, monkeypatch):
    """PneumoniaMNIST's network is trained on the MedMNIST npz (here a generated fixture in
    its layout: (N, 28, 28) uint8 images, (N, 1) labels), has 2 outputs, and is cached."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 64), ("val", 8), ("test", 32)):
        labels = np.arange(n) % 2
        images = rng.integers(0, 100, (n, 28, 28)) + 120 * labels[:, None, None]
        arrays[f"{split}_images"] = images.astype(np.uint8)
        arrays[f"{split}_labels"] = labels.astype(np.uint8)[:, None]
    (tmp_path / "medmnist").mkdir()
    np.savez(tmp_path / "medmnist" / "pneumoniamnist.npz", **arrays)
    monkeypatch.setitem(fid_module.TRAIN_CONFIG, "pneumoniamnist", {"epochs": 2, "lr": 3e-3})
    net = feature_network("pneumoniamnist", cache_dir=tmp_path, root=tmp_path, log=False)
    x = md.tensor(arrays["test_images"][:5, None].astype(np.float32) / 255)
    assert net(x).shape == (5, 2) and net.features(x).shape == (5, fid_module.FEATURE_DIM)
    assert fid_module.checkpoint_path("pneumoniamnist", tmp_path).is_file()
    again = feature_network("pneumoniamnist", cache_dir=tmp_path, root=tmp_path)
    np.testing.assert_array_equal(again.features(x).numpy(), net.features(x).numpy())


def test_feature_network_names_the_known_data_sets():
    with pytest.raises(ValueError, match="feature_network: data set must be one of"):
        feature_network("cifar10")


@needs_mnist
def test_the_measured_check_runs_and_writes_its_record(tmp_path, monkeypatch):
    """``python -m benchmarks.fid_check`` at N = 100 with an untrained feature network in
    place of the cached ones (the full run is in benchmarks/RESULTS.md)."""

    def untrained(name):
        md.manual_seed(0)
        net = FeatureNet().eval()
        net.info = {"test_accuracy": None}
        return net

    monkeypatch.setattr(fid_module, "feature_network", untrained)
    assert fid_check.main(["--n", "100", "--datasets", "mnist", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "metrics.json").read_text())["datasets"]["mnist"]
    assert record["n"] == 100 and set(record["fid_blur"]) == {str(s) for s in fid_check.BLUR}
    assert record["fid_blur"]["0.0"] == record["fid_train_test"] > 0
    assert (tmp_path / "fid_vs_disturbance.png").stat().st_size > 10_000
