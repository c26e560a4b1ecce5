"""Fréchet Inception Distance with a feature network minidl trains itself.

FID (Heusel et al., 2017) fits a Gaussian to the features of real images, N(mu_r, S_r), and
one to the features of generated images, N(mu_g, S_g), and reports the Fréchet (2-Wasserstein)
distance between the two:

    FID = |mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))

The original features are Inception-v3's 2048 pool features. No Inception weights can be
downloaded here, so by default the features are the penultimate activations of a small CNN
classifier trained on the same domain (MNIST or Fashion-MNIST): the "Fréchet LeNet
distance" used for MNIST-like data. ``feature_network(name)`` returns that network, trained
once per data set and cached as a checksummed minidl checkpoint. The network is a
parameter: anything that maps a float Tensor of images (B, C, H, W) to features (B, D), a
converted Inception-v3 included, can be passed instead (``fid(real, fake, network)``).

FID is biased by the number of samples (it shrinks as N grows, towards the true distance),
so a FID means something only next to its N: every result carries it (``FID.n``), and the
default N is 10,000 everywhere (``N_SAMPLES``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.nn import functional as F
from minidl.serialization import SerializationError

from .image import as_array

N_SAMPLES = 10_000  # the N of every reported FID unless a caller says otherwise
FEATURE_DIM = 128
# Training of the cached feature networks: Adam with a one-cycle lr, batch 128; Fashion-MNIST
# needs more epochs than MNIST for its accuracy bar (>= 91% against >= 99% for MNIST).
# PneumoniaMNIST (the class-balanced 2,428 training images here, 2 classes) is small: more
# epochs over it cost less than one MNIST epoch.
TRAIN_CONFIG = {
    "mnist": {"epochs": 3, "lr": 3e-3},
    "fashion-mnist": {"epochs": 6, "lr": 3e-3},
    "pneumoniamnist": {"epochs": 20, "lr": 3e-3},
}
BATCH_SIZE = 128
CHECKPOINT_VERSION = 1  # bump when the architecture or the training changes

Features = Callable[[md.Tensor], md.Tensor]


class FID(NamedTuple):
    """A Fréchet distance and the number of samples per side it was computed from."""

    fid: float
    n: int

    def __str__(self) -> str:
        return f"FID {self.fid:.3f} (N={self.n:,})"


# --------------------------------------------------------------------------- the distance
def gaussian_stats(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64."""
    f = as_array(features).astype(np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"gaussian_stats: features must be (N, D) with N >= 2, got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """|mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)) for two Gaussians.

    mu: (D,), sigma: (D, D). The matrix square root is scipy.linalg.sqrtm. As in pytorch-fid:
    when the product is singular (few samples against D, or dead features) and sqrtm returns
    non-finite values, eps * I is added to both covariances and the root taken again; a
    complex result from round-off (imaginary part of the diagonal below 1e-3) is replaced
    by its real part, a larger imaginary part is an error.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    d = len(mu1)
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(
            f"frechet_distance: means {mu1.shape}, {mu2.shape} and covariances {s1.shape}, "
            f"{s2.shape} must be (D,) and (D, D) with one D"
        )
    covmean = _sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = eps * np.eye(d)
        covmean = _sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        imaginary = np.abs(np.diagonal(covmean).imag).max()
        if imaginary > 1e-3:
            raise ValueError(
                f"frechet_distance: sqrtm(sigma1 @ sigma2) has an imaginary part of "
                f"{imaginary:.3g} on its diagonal (more than round-off): are the covariances "
                "positive semi-definite?"
            )
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _sqrtm(a: np.ndarray) -> np.ndarray:
    import scipy.linalg  # imported when first needed: minidl itself needs only NumPy

    with warnings.catch_warnings():  # sqrtm warns on singular input; the caller handles it
        warnings.simplefilter("ignore")
        return scipy.linalg.sqrtm(a)


# --------------------------------------------------------------------------- features
def as_images(images: Any) -> np.ndarray:
    """Images as float32 (N, C, H, W) in [0, 1]: uint8 is divided by 255, (N, H, W) gets a
    channel axis; float input is taken to be in [0, 1] already."""
    x = as_array(images)
    x = x.astype(np.float32) / 255 if x.dtype == np.uint8 else x.astype(np.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"fid: images must be (N, H, W) or (N, C, H, W), got {x.shape}")
    return x


def extract_features(network: Features, images: Any, batch_size: int = 500) -> np.ndarray:
    """``network`` applied to images (N, C, H, W) in [0, 1] in batches, without the graph:
    features (N, D) as float64. A Module is put in eval mode for the pass and restored."""
    x = as_images(images)
    module = network if isinstance(network, nn.Module) else getattr(network, "__self__", None)
    was_training = isinstance(module, nn.Module) and module.training
    if was_training:
        module.eval()
    try:
        with md.no_grad():
            out = [
                as_array(network(md.tensor(x[i : i + batch_size])))
                for i in range(0, len(x), batch_size)
            ]
    finally:
        if was_training:
            module.train()
    features = np.concatenate(out).astype(np.float64)
    if features.ndim != 2:
        raise ValueError(
            f"fid: the network must return features (B, D), it returned "
            f"{features.shape[1:]} per image"
        )
    return features


def fid(
    real: Any,
    generated: Any,
    network: Features | str,
    n: int = N_SAMPLES,
    batch_size: int = 500,
) -> FID:
    """FID between the first ``n`` real and the first ``n`` generated images.

    real, generated: (N, H, W) or (N, C, H, W), uint8 or float in [0, 1], at least ``n`` of
    each (pass a smaller ``n`` explicitly: FID is biased by N, so it is never chosen
    silently). network: a callable from a float Tensor (B, C, H, W) in [0, 1] to features
    (B, D), e.g. ``feature_network("mnist").features`` or a converted Inception-v3; or a data
    set name ("mnist", "fashion-mnist", "pneumoniamnist") for its cached feature network.
    Returns ``FID(fid, n)``.
    """
    if isinstance(network, str):
        network = feature_network(network).features
    if n < 2:
        raise ValueError(f"fid: n must be >= 2, got {n}")
    for name, images in (("real", real), ("generated", generated)):
        if len(images) < n:
            raise ValueError(
                f"fid: {len(images)} {name} images, fewer than n={n}; pass n={len(images)} "
                "explicitly (and report it: FID depends on N)"
            )
    mu1, s1 = gaussian_stats(extract_features(network, real[:n], batch_size))
    mu2, s2 = gaussian_stats(extract_features(network, generated[:n], batch_size))
    return FID(frechet_distance(mu1, s1, mu2, s2), n)


# --------------------------------------------------------------------------- the network
class FeatureNet(nn.Module):
    """A LeNet-style classifier whose penultimate activations are the FID features.

    x: (N, 1, 28, 28) in [0, 1], scaled to [-1, 1]
    -> conv 3x3 (16) -> BatchNorm -> ReLU -> max pool 2  (N, 16, 14, 14)
    -> conv 3x3 (32) -> BatchNorm -> ReLU -> max pool 2  (N, 32, 7, 7)
    -> flatten -> Linear(1568, 128) -> ReLU               (N, 128): ``features(x)``
    -> dropout 0.3 -> Linear(128, 10)                     (N, 10):  ``forward(x)``, logits
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, FEATURE_DIM), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURE_DIM, num_classes))

    def features(self, x: md.Tensor) -> md.Tensor:
        """(N, 1, 28, 28) in [0, 1] -> (N, 128) penultimate activations."""
        return self.body(x * 2 - 1)

    def forward(self, x: md.Tensor) -> md.Tensor:
        """(N, 1, 28, 28) in [0, 1] -> (N, num_classes) logits."""
        return self.head(self.features(x))


def _batches(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> Iterator[tuple]:
    order = rng.permutation(len(x))
    for i in range(0, len(x), BATCH_SIZE):
        idx = order[i : i + BATCH_SIZE]
        yield md.tensor(x[idx]), md.tensor(y[idx])


def accuracy(network: nn.Module, images: Any, labels: np.ndarray) -> float:
    """Share of images whose largest logit is their label."""
    logits = extract_features(network, images)
    return float((logits.argmax(axis=1) == np.asarray(labels)).mean())


def train_feature_network(
    images: Any, labels: np.ndarray, epochs: int, lr: float = 3e-3, seed: int = 0, log: bool = False
) -> FeatureNet:
    """A FeatureNet trained on images (N, 28, 28) / labels (N,) by cross-entropy: Adam, batch
    128, the lr rising then falling as a cosine (OneCycleLR, stepped per batch)."""
    x, y = as_images(images), np.asarray(labels, dtype=np.int64)
    md.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = FeatureNet(int(y.max()) + 1)
    optimizer = optim.Adam(net.parameters(), lr=lr)
    steps = epochs * -(-len(x) // BATCH_SIZE)
    scheduler = optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=steps, pct_start=0.2
    )
    net.train()
    for epoch in range(epochs):
        start, total = time.perf_counter(), 0.0
        for xb, yb in _batches(x, y, rng):
            loss = F.cross_entropy(net(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.item()) * len(yb)
        if log:
            print(f"feature net epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    net.eval()
    return net


def checkpoint_path(name: str, cache_dir: str | Path | None = None) -> Path:
    """Where the feature network of data set ``name`` is cached: ``cache_dir``, else
    ``minidl.data.cache_root()/fid`` (``$MINIDL_CACHE`` or ``~/.cache/minidl``), never the
    (read-only) data folder."""
    from minidl.data import cache_root

    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "fid"
    return folder / f"lenet-{name}-v{CHECKPOINT_VERSION}.mdl"


def _load_cached(path: Path, name: str) -> tuple[FeatureNet, dict] | None:
    try:
        saved = md.load(path)  # verifies the SHA-256 checksum stored in the file
    except SerializationError as err:
        warnings.warn(f"feature_network: {err}; training it again", stacklevel=3)
        return None
    if saved.get("dataset") != name or saved.get("version") != CHECKPOINT_VERSION:
        warnings.warn(
            f"feature_network: {path} is not a v{CHECKPOINT_VERSION} {name} network; "
            "training it again",
            stacklevel=3,
        )
        return None
    net = FeatureNet(saved["num_classes"])
    net.load_state_dict(saved["state_dict"])
    return net.eval(), saved["info"]


def _load(name: str, split: str, root: str | Path | None) -> Any:
    from minidl.data import load_fashion_mnist, load_medmnist, load_mnist

    if name == "pneumoniamnist":
        return load_medmnist(name, split, root=root)
    return (load_mnist if name == "mnist" else load_fashion_mnist)(split, root=root)


def feature_network(
    name: str, cache_dir: str | Path | None = None, root: str | Path | None = None, log: bool = True
) -> FeatureNet:
    """The FeatureNet of data set ``name`` ("mnist", "fashion-mnist", or "pneumoniamnist": the
    28x28 MedMNIST file): read from its cached checkpoint (checksum verified), else trained
    on the training images, scored on the test images and cached. ``net.info`` holds its
    test accuracy and training time. A damaged or foreign checkpoint is retrained, not trusted."""
    if name not in TRAIN_CONFIG:
        raise ValueError(
            f"feature_network: data set must be one of {list(TRAIN_CONFIG)}, got {name!r}"
        )
    path = checkpoint_path(name, cache_dir)
    cached = _load_cached(path, name) if path.is_file() else None
    if cached is not None:
        net, net.info = cached
        return net
    train, test = _load(name, "train", root), _load(name, "test", root)
    config = TRAIN_CONFIG[name]
    start = time.perf_counter()
    net = train_feature_network(train.data, train.targets, **config, log=log)
    seconds = round(time.perf_counter() - start, 1)
    info = {**config, "batch_size": BATCH_SIZE, "train_time_s": seconds,
            "test_accuracy": accuracy(net, test.data, test.targets)}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    md.save({"dataset": name, "version": CHECKPOINT_VERSION, "num_classes": len(train.classes),
             "state_dict": net.state_dict(), "info": info}, path)  # fmt: skip
    net.info = info
    return net
