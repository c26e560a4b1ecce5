"""Grad-CAM and Grad-CAM++: the maps equal PyTorch autograd's on the same weights (2-D and
3-D), Grad-CAM is CAM for a conv -> global average pool -> linear head, a network trained to
find a digit placed in one quadrant points at that quadrant, and removing the top 10% of
its heatmap costs more confidence than removing random pixels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as md
from minidl import nn, optim
from minidl.data import data_root, load_mnist
from minidl.explain import (
    activations_and_gradients,
    confidence_drop,
    grad_cam,
    grad_cam_plus_plus,
    overlay,
)
from minidl.nn import functional as F

METHODS = {"gradcam": grad_cam, "gradcam++": grad_cam_plus_plus}


def small_cnn(dims: int, channels: int = 2, classes: int = 3) -> nn.Sequential:
    """conv -> BN -> ReLU -> max pool -> conv -> ReLU (the target, index 5) -> GAP -> linear."""
    conv, bn, pool, gap = {
        2: (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d),
        3: (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d, nn.AdaptiveAvgPool3d),
    }[dims]
    return nn.Sequential(
        conv(channels, 4, 3, padding=1), bn(4), nn.ReLU(), pool(2),
        conv(4, 5, 3, padding=1), nn.ReLU(), gap(1), nn.Flatten(), nn.Linear(5, classes),
    )  # fmt: skip


def torch_twin(model: nn.Sequential, dims: int):
    """The same network in PyTorch with minidl's weights and BatchNorm statistics."""
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    conv, bn, pool, gap = {
        2: (tnn.Conv2d, tnn.BatchNorm2d, tnn.MaxPool2d, tnn.AdaptiveAvgPool2d),
        3: (tnn.Conv3d, tnn.BatchNorm3d, tnn.MaxPool3d, tnn.AdaptiveAvgPool3d),
    }[dims]
    twin = tnn.Sequential(
        conv(model[0].in_channels, 4, 3, padding=1), bn(4), tnn.ReLU(), pool(2),
        conv(4, 5, 3, padding=1), tnn.ReLU(), gap(1), tnn.Flatten(), tnn.Linear(5, 3),
    ).double()  # fmt: skip
    state = {k: torch.from_numpy(np.array(v.numpy())) for k, v in model.state_dict().items()}
    twin.load_state_dict(state)
    return twin.eval()


def torch_cam(twin, layer, x: np.ndarray, target: np.ndarray, plus_plus: bool) -> np.ndarray:
    """Grad-CAM / Grad-CAM++ written with torch.autograd.grad, resized with torch's
    interpolate (align_corners=False) and scaled to [0, 1], as pytorch-grad-cam."""
    import torch

    kept = {}
    handle = layer.register_forward_hook(lambda m, a, out: kept.setdefault("a", out))
    xt = torch.from_numpy(x)
    scores = twin(xt)
    handle.remove()
    a = kept["a"]
    (g,) = torch.autograd.grad(scores[torch.arange(len(x)), torch.from_numpy(target)].sum(), a)
    spatial = tuple(range(2, a.ndim))
    if plus_plus:
        alpha = g**2 / (2 * g**2 + a.sum(spatial, keepdim=True) * g**3 + 1e-6)
        alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
        weights = (torch.relu(g) * alpha).sum(spatial, keepdim=True)
    else:
        weights = g.mean(spatial, keepdim=True)
    cam = torch.relu((weights * a).sum(1, keepdim=True))
    mode = {2: "bilinear", 3: "trilinear"}[len(spatial)]
    cam = torch.nn.functional.interpolate(cam, size=x.shape[2:], mode=mode, align_corners=False)
    cam = cam[:, 0].detach().numpy()
    axes = tuple(range(1, cam.ndim))
    cam = cam - cam.min(axis=axes, keepdims=True)
    return cam / (cam.max(axis=axes, keepdims=True) + 1e-7)


def trained_batchnorm(model: nn.Sequential, x: np.ndarray) -> None:
    """A few training-mode forwards so BatchNorm's running statistics are not the defaults."""
    with md.no_grad():
        for _ in range(3):
            model(md.tensor(x))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dims, size", [(2, (9, 7)), (3, (6, 5, 7))])
def test_maps_equal_pytorch_autograd(method, dims, size):
    torch = pytest.importorskip("torch")
    md.manual_seed(0)
    model = small_cnn(dims).double()
    rng = np.random.default_rng(dims)
    x = rng.standard_normal((4, 2, *size))
    trained_batchnorm(model, x)
    twin = torch_twin(model, dims)
    target = np.array([0, 1, 2, 1])
    ours = METHODS[method](model, model[5], x, target)
    theirs = torch_cam(twin, twin[5], x, target, plus_plus=method == "gradcam++")
    assert ours.shape == (4, *size)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    # target=None explains each sample's top class
    top = twin(torch.from_numpy(x)).argmax(1).numpy()
    np.testing.assert_allclose(
        METHODS[method](model, model[5], x),
        torch_cam(twin, twin[5], x, top, plus_plus=method == "gradcam++"),
        atol=1e-5,
    )


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), target=st.integers(0, 2), side=st.integers(3, 6))
def test_gradcam_is_cam_for_a_global_average_pool_head(seed, target, side):
    """conv -> ReLU -> GAP -> linear: dy^c/dA^k = W[c, k] / |S| everywhere, so Grad-CAM's
    weights are W[c] / |S| and its map is CAM's relu(sum_k W[c, k] A^k) / |S| (Zhou et al.)."""
    md.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(3, 3),
    ).double()  # fmt: skip
    x = np.random.default_rng(seed).standard_normal((2, 1, side, side))
    activations, grads = activations_and_gradients(model, model[1], x, target)
    weight = model[4].weight.numpy()[target]
    np.testing.assert_allclose(
        grads, np.broadcast_to(weight[None, :, None, None] / side**2, grads.shape)
    )
    cam = np.maximum(np.einsum("k,nkhw->nhw", weight / side**2, activations), 0)
    cam = cam - cam.min(axis=(1, 2), keepdims=True)
    cam = cam / (cam.max(axis=(1, 2), keepdims=True) + 1e-7)
    np.testing.assert_allclose(grad_cam(model, model[1], x, target), cam, atol=1e-6)


def test_leaves_gradients_mode_and_hooks_as_they_were():
    md.manual_seed(0)
    model = small_cnn(2)
    x = np.random.default_rng(0).standard_normal((2, 2, 8, 8)).astype(np.float32)
    model.train()
    heatmaps = grad_cam(model, model[5], x)
    assert heatmaps.dtype == np.float32 and heatmaps.min() >= 0 and heatmaps.max() <= 1
    assert model.training and all(p.grad is None for p in model.parameters())
    assert not model[5]._forward_hooks and not model[5]._backward_hooks


def test_errors_name_the_problem():
    md.manual_seed(0)
    model = small_cnn(2)
    x = np.zeros((1, 2, 8, 8), np.float32)
    with pytest.raises(RuntimeError, match="was not called"):
        grad_cam(model, nn.ReLU(), x)
    with pytest.raises(ValueError, match="out of range for 3 classes"):
        grad_cam(model, model[5], x, target=3)
    with pytest.raises(ValueError, match="1-3 spatial dims"):
        grad_cam(model, model[7], x)  # Flatten: (N, 5), no spatial dims


def test_overlay_blends_image_and_colormap():
    from matplotlib import colormaps

    image = np.linspace(0, 255, 20, dtype=np.uint8).reshape(4, 5)
    heat = np.linspace(0, 1, 20).reshape(4, 5)
    grey = np.repeat((image / 255.0)[..., None], 3, axis=-1)
    np.testing.assert_allclose(overlay(image, heat, alpha=0), grey, atol=1e-6)
    np.testing.assert_allclose(
        overlay(image, heat, alpha=1), colormaps["jet"](heat)[..., :3], atol=1e-6
    )
    rgb = np.random.default_rng(0).random((3, 4, 5))
    out = overlay(rgb, heat, alpha=0.25)
    assert out.shape == (4, 5, 3) and out.dtype == np.float32
    np.testing.assert_allclose(
        out, 0.75 * rgb.transpose(1, 2, 0) + 0.25 * colormaps["jet"](heat)[..., :3], atol=1e-6
    )
    with pytest.raises(ValueError, match="does not match"):
        overlay(image, heat[:3])


# --------------------------------------------------------------------------- a trained model
DIGIT = 9  # a 9x9 digit in one quadrant of an 18x18 blank canvas
CLASSES = (0, 1, 3, 7)


def quadrant_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MNIST test digits of CLASSES, 3x3-average-pooled to 9x9 (scaled to [0, 1]), each
    pasted into a random quadrant of a zero canvas. Returns images float32 (n, 1, 18, 18),
    labels (n,) in 0..3 (index into CLASSES) and quadrants (n,) in 0..3 (row-major)."""
    mnist = load_mnist("test")
    rng = np.random.default_rng(seed)
    picked = rng.choice(np.flatnonzero(np.isin(mnist.targets, CLASSES)), n, replace=False)
    digits = mnist.data[picked, :27, :27].astype(np.float32)
    digits = digits.reshape(n, DIGIT, 3, DIGIT, 3).mean((2, 4)) / 255
    quadrants = rng.integers(0, 4, n)
    images = np.zeros((n, 1, 2 * DIGIT, 2 * DIGIT), np.float32)
    for i, (digit, q) in enumerate(zip(digits, quadrants)):
        r, c = divmod(int(q), 2)
        images[i, 0, r * DIGIT : (r + 1) * DIGIT, c * DIGIT : (c + 1) * DIGIT] = digit
    return images, np.searchsorted(CLASSES, mnist.targets[picked]), quadrants


@pytest.fixture(scope="module")
def digit_finder():
    """A small fully convolutional network (global max pooling: it must find the digit
    wherever it is) trained for 2 epochs (seconds) on 1,000 canvases; 200 held-out ones.
    The explained layer is the last ReLU (index 4, 9x9 maps)."""
    if not (data_root() / "mnist").is_dir():
        pytest.skip("MNIST is not under MINIDL_DATA")
    md.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 24, 3, padding=1), nn.ReLU(),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(24, len(CLASSES)),
    )  # fmt: skip
    x, y, _ = quadrant_digits(1000, seed=0)
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    rng = np.random.default_rng(0)
    for _ in range(2):
        for batch in np.array_split(rng.permutation(len(x)), 40):
            loss = F.cross_entropy(model(md.tensor(x[batch])), md.tensor(y[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    x_test, y_test, q_test = quadrant_digits(200, seed=1)
    with md.no_grad():
        accuracy = (model(md.tensor(x_test)).numpy().argmax(1) == y_test).mean()
    assert accuracy > 0.85, f"the digit finder did not learn (test accuracy {accuracy:.3f})"
    return model, x_test, y_test, q_test


def quadrant_mass(heatmaps: np.ndarray) -> np.ndarray:
    """(N, 18, 18) -> (N, 4): the share of each heatmap's sum in each quadrant."""
    n = len(heatmaps)
    blocks = heatmaps.reshape(n, 2, DIGIT, 2, DIGIT).sum((2, 4)).reshape(n, 4)
    return blocks / blocks.sum(1, keepdims=True)


@pytest.mark.parametrize("method", METHODS)
def test_heatmap_mass_falls_in_the_digits_quadrant(digit_finder, method):
    model, x, y, quadrant = digit_finder
    mass = quadrant_mass(METHODS[method](model, model[4], x, y))
    in_quadrant = mass[np.arange(len(x)), quadrant]
    # chance is 1/4 of the mass and 1/4 of the argmaxes
    assert in_quadrant.mean() > 0.6
    assert (mass.argmax(1) == quadrant).mean() > 0.9


@pytest.mark.parametrize("method", METHODS)
def test_removing_the_top_10_percent_costs_more_than_random_pixels(digit_finder, method):
    model, x, y, _ = digit_finder
    heatmaps = METHODS[method](model, model[4], x, y)
    explained = confidence_drop(model, x, heatmaps, fraction=0.1, target=y)
    random = confidence_drop(
        model, x, np.random.default_rng(0).random(heatmaps.shape), fraction=0.1, target=y
    )
    assert explained.mean() > random.mean() + 0.2
    assert (explained > random).mean() > 0.75
