"""minidl.models.preprocess: torchvision's mean/std, Keras's "caffe" and "tf" modes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from minidl.models import default_mode, preprocess

PIXELS = arrays(np.uint8, st.tuples(st.integers(1, 3), st.just(3), st.integers(1, 5),
                                    st.integers(1, 5)))  # fmt: skip


def test_each_architecture_has_its_convention() -> None:
    assert default_mode("vgg16") == default_mode("vgg19_bn") == "caffe"
    assert default_mode("mobilenet_v2") == "tf"
    for arch in ["resnet50", "resnext50_32x4d", "wide_resnet50_2", "densenet161", "googlenet"]:
        assert default_mode(arch) == "torch"


def test_known_pixels() -> None:
    """A pure red pixel (255, 0, 0) in each mode, worked out by hand."""
    red = np.zeros((1, 3, 1, 1), np.uint8)
    red[0, 0] = 255
    torch_mode = preprocess("resnet50", red)[0, :, 0, 0]
    np.testing.assert_allclose(
        torch_mode, [(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225], rtol=1e-6
    )
    caffe = preprocess("vgg16", red)[0, :, 0, 0]  # BGR order, means subtracted
    np.testing.assert_allclose(caffe, [-103.939, -116.779, 255 - 123.68], rtol=1e-6)
    np.testing.assert_allclose(preprocess("mobilenet_v2", red)[0, :, 0, 0], [1, -1, -1])
    np.testing.assert_allclose(preprocess("vgg16", red, mode="tf"), preprocess("mobilenet_v2", red))


@given(PIXELS)
def test_modes_are_the_documented_affine_maps_and_invertible(pixels: np.ndarray) -> None:
    x = pixels.astype(np.float64)
    tf = preprocess("mobilenet_v2", pixels)
    assert tf.dtype == np.float32 and tf.shape == pixels.shape
    assert tf.min() >= -1 and tf.max() <= 1
    np.testing.assert_allclose((tf + 1) * 127.5, x, atol=1e-4)
    caffe = preprocess("vgg16", pixels)
    bgr_mean = np.array([103.939, 116.779, 123.68])[:, None, None]
    np.testing.assert_allclose(caffe[:, ::-1] + bgr_mean[::-1], x, atol=1e-4)
    torch_mode = preprocess("densenet121", pixels)
    mean = np.array([0.485, 0.456, 0.406])[:, None, None]
    std = np.array([0.229, 0.224, 0.225])[:, None, None]
    np.testing.assert_allclose((torch_mode * std + mean) * 255, x, atol=1e-3)


def test_a_single_image_and_floats_are_accepted() -> None:
    image = np.full((3, 2, 2), 127.5, np.float32)
    np.testing.assert_allclose(preprocess("mobilenet_v2", image), 0, atol=1e-7)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match=r"expected RGB images \(..., 3, H, W\), got shape"):
        preprocess("resnet18", np.zeros((2, 32, 32, 3)))
    with pytest.raises(ValueError, match="mode must be one of"):
        preprocess("resnet18", np.zeros((3, 2, 2)), mode="keras")
