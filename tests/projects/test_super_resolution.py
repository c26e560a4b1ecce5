"""super_resolution: MATLAB-style bicubic resizing (coordinates, sizes, round trip), the
Y-channel PSNR with its border crop, tiled inference, the augmentation, the perceptual
loss (zero for identical images, its gradient checked), and the quick run end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minidl as md
from minidl import nn
from projects import super_resolution as sr
from projects.runner import run_project


@pytest.mark.parametrize("scale", [2, 3, 4, 1 / 2, 1 / 3, 1 / 4])
def test_imresize_samples_where_matlab_does(scale):
    """Output pixel x (1-based) samples the input at u = x / scale + (1 - 1 / scale) / 2.
    The cubic kernel (and its antialiased widening) reproduces linear functions, so a
    ramp comes out as the ramp at u, away from the mirrored edges."""
    h, w = 48, 36
    ramp = np.add.outer(0.7 * np.arange(1, h + 1), -0.3 * np.arange(1, w + 1))
    out = sr.imresize(ramp, scale)
    assert out.shape == (round(h * scale), round(w * scale))
    u = np.arange(1, out.shape[0] + 1) / scale + 0.5 * (1 - 1 / scale)
    v = np.arange(1, out.shape[1] + 1) / scale + 0.5 * (1 - 1 / scale)
    expected = np.add.outer(0.7 * u, -0.3 * v)
    edge = int(np.ceil(4 * max(scale, 1)))  # output pixels whose kernel reaches an edge
    inner = (slice(edge, -edge), slice(edge, -edge))
    np.testing.assert_allclose(out[inner], expected[inner], atol=1e-12)
    np.testing.assert_allclose(sr.imresize(np.full((h, w), 0.4), scale), 0.4)  # weights sum to 1


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_round_trip_sizes(scale):
    photo = np.zeros((321, 481, 3), np.uint8)
    cropped = sr.modcrop(photo, scale)
    assert cropped.shape == (321 - 321 % scale, 481 - 481 % scale, 3)
    y = sr.rgb_to_y(cropped / 255.0)
    low = sr.imresize(y, 1 / scale)
    assert low.shape == (cropped.shape[0] // scale, cropped.shape[1] // scale)
    assert sr.bicubic(y, scale).shape == y.shape
    batch = np.stack([y[:48, :48], y[48:96, :48]])
    assert sr.bicubic(batch, scale).shape == batch.shape  # batched over leading axes


def test_y_is_matlabs_studio_range_luma():
    rgb = np.array([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
    y = sr.rgb_to_y(rgb) * 255
    np.testing.assert_allclose(y, [16, 235, 16 + 65.481, 16 + 128.553, 16 + 24.966])


def test_psnr_on_y_crops_the_border():
    """Errors only within ``border`` pixels of the edge do not count; a uniform error of
    1/255 inside gives 10 log10(255^2 / 1) = 48.13 dB; SSIM is 1 for identical images."""
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.1, 0.9, (40, 50))
    damaged = truth.copy()
    damaged[:3], damaged[:, -3:] = 0.0, 1.0
    value, ssim = sr.score_y(damaged, truth, border=3)
    assert value == np.inf and ssim == pytest.approx(1.0)
    assert sr.score_y(damaged, truth, border=2)[0] < 20
    shifted = truth + 1 / 255
    assert sr.score_y(shifted, truth, border=3)[0] == pytest.approx(10 * np.log10(255**2), abs=1e-9)


def test_tiled_inference_equals_one_pass():
    md.manual_seed(0)
    model = sr.SRCNN((9, 5, 5), n1=4, n2=3, residual=True)
    y = np.random.default_rng(1).uniform(0, 1, (37, 29))
    with md.no_grad():
        whole = model(md.tensor(y[None, None].astype(np.float32))).numpy()[0, 0]
    np.testing.assert_allclose(sr.super_resolve(model, y, tile=8), np.clip(whole, 0, 1), atol=1e-5)


def test_augmentation_keeps_range_and_zero_jitter_is_identity():
    rng = np.random.default_rng(0)
    rgb = rng.uniform(0, 1, (5, 8, 8, 3))
    np.testing.assert_allclose(sr.colour_jitter(rgb, 0.0, rng), rgb)
    jittered = sr.colour_jitter(rgb, 0.2, rng)
    assert jittered.min() >= 0 and jittered.max() <= 1 and not np.allclose(jittered, rgb)
    photos = [rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)]
    x, y = sr.patch_batch(photos, 3, 4, 12, 0.2, rng)
    assert x.shape == y.shape == (4, 1, 12, 12) and x.dtype == np.float32
    np.testing.assert_allclose(x, sr.bicubic(y[:, 0].astype(np.float64), 3)[:, None], atol=1e-6)


def small_feature_net() -> sr.FeatureNet:
    md.manual_seed(0)
    net = sr.FeatureNet().double().eval()  # eval: BatchNorm on running statistics
    return net


def test_perceptual_loss_is_zero_for_identical_images_and_positive_otherwise():
    net = small_feature_net()
    hr = md.tensor(np.random.default_rng(0).uniform(0, 1, (2, 1, 12, 12)))
    assert sr.perceptual_loss(hr, hr, net.features).item() == 0.0
    blurred = md.tensor(sr.bicubic(hr.numpy()[:, 0], 2)[:, None])
    assert sr.perceptual_loss(blurred, hr, net.features).item() > 0


def test_perceptual_loss_gradient():
    """d loss / d sr by the chain rule through the feature network, against central
    differences (float64); the target's features carry none."""
    net = small_feature_net()
    rng = np.random.default_rng(1)
    hr = md.tensor(rng.uniform(0, 1, (2, 1, 8, 8)))
    x = md.tensor(rng.uniform(0, 1, (2, 1, 8, 8)), requires_grad=True)
    md.gradcheck(lambda s: sr.perceptual_loss(s, hr, net.features), x)
    hr.requires_grad_(True)
    sr.perceptual_loss(x, hr, net.features).backward()
    assert hr.grad is None


def test_imagenet_input_repeats_y_and_normalises():
    y = md.tensor(np.full((2, 1, 3, 3), 0.5, np.float32))
    out = sr.ImageNetInput(nn.Identity())(y).numpy()
    assert out.shape == (2, 3, 3, 3)
    expected = (0.5 - np.array(sr.ImageNetInput.MEAN)) / np.array(sr.ImageNetInput.STD)
    np.testing.assert_allclose(out[0, :, 0, 0], expected, rtol=1e-6)


def test_a_vgg16_slice_can_be_the_feature_network():
    """What a user with converted VGG16 weights passes as FEATURES (random weights here, and
    narrowed: the layout is the point): conv1_1 ... relu2_2 behind ImageNetInput."""
    from minidl.models import vgg16

    md.manual_seed(0)
    features = sr.ImageNetInput(vgg16(width_mult=0.125).features[:9]).eval()
    hr = md.tensor(np.random.default_rng(0).uniform(0, 1, (1, 1, 16, 16)).astype(np.float32))
    assert features(hr).shape == (1, 16, 8, 8)
    assert sr.perceptual_loss(hr, hr, features).item() == 0.0


@pytest.mark.skipif(not sr.available(), reason="BSDS500 is not under MINIDL_DATA")
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("super_resolution", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    results = report["results"]
    assert results["sizes"] == {"train": 4, "val": 4}
    for s in sr.SCALES:
        assert 15 < results["bicubic"][f"x{s}"]["psnr"] < 40
        for name in ("mse", "mse_perceptual"):
            assert 0 < results[name][f"x{s}"]["ssim"] <= 1
            assert len(results[name]["curve"][f"psnr_x{s}"]) == sr.MONITOR["points"]
    assert results["mse"]["steps"] == 10 and results["mse"]["residual"] is True
    assert set(report["figures"]) == {"crops_x4.png", "psnr_against_time.png"}
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
