"""The input scaling each architecture's pretrained weights expect.

``preprocess(arch, images, mode=None)`` maps RGB images with values in [0, 255] (uint8 or
float, (N, 3, H, W) or (3, H, W)) to float32 network inputs of the same shape:

- ``"torch"``: x / 255, then (x - mean) / std per channel with ImageNet's mean (0.485,
  0.456, 0.406) and std (0.229, 0.224, 0.225): what every torchvision checkpoint expects
  (so what weights converted by ``minidl.models.convert`` expect);
- ``"caffe"``: RGB -> BGR, then the ImageNet BGR channel means (103.939, 116.779, 123.68)
  subtracted, no scaling: Keras's ``vgg16.preprocess_input`` (the original Caffe weights);
- ``"tf"``: x / 127.5 - 1, into [-1, 1]: Keras's ``mobilenet_v2.preprocess_input``.

Without ``mode`` the architecture's own convention is used, the one the Keras reference
models of the documented projects were trained with: "caffe" for the VGGs, "tf" for
MobileNetV2, "torch" for the others (ResNet, ResNeXt, Wide ResNet, DenseNet, GoogLeNet).
Pass ``mode="torch"`` for weights converted from torchvision.
"""

from __future__ import annotations

from typing import Any

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
MODES = ("torch", "caffe", "tf")


def default_mode(arch: str) -> str:
    """The preprocessing mode of architecture ``arch`` (a ``minidl.models`` name)."""
    if arch.startswith("vgg"):
        return "caffe"
    if arch.startswith("mobilenet"):
        return "tf"
    return "torch"


def preprocess(arch: str, images: Any, mode: str | None = None) -> np.ndarray:
    """RGB images in [0, 255], channels first (..., 3, H, W), as the float32 inputs that
    ``arch``'s weights expect (``mode``: "torch", "caffe" or "tf"; default: the
    architecture's own, see the module docstring)."""
    mode = mode or default_mode(arch)
    if mode not in MODES:
        raise ValueError(f"preprocess: mode must be one of {MODES}, got {mode!r}")
    x = np.asarray(images, dtype=np.float32)
    if x.ndim < 3 or x.shape[-3] != 3:
        raise ValueError(f"preprocess: expected RGB images (..., 3, H, W), got shape {x.shape}")
    channel = (slice(None), None, None)  # broadcasts a (3,) vector over (..., 3, H, W)
    if mode == "torch":
        mean, std = np.float32(IMAGENET_MEAN)[channel], np.float32(IMAGENET_STD)[channel]
        return (x / np.float32(255) - mean) / std
    if mode == "caffe":
        return x[..., ::-1, :, :] - np.float32(CAFFE_BGR_MEAN)[channel]
    return x / np.float32(127.5) - np.float32(1)
