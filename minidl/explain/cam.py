"""Class activation maps from gradients: Grad-CAM (Selvaraju et al., 2017) and Grad-CAM++
(Chattopadhay et al., 2018), as pytorch-grad-cam computes them.

For a class score y^c (the logit, before softmax) and the activations A^k of a convolutional
layer (channel k, spatial position i over 1, 2 or 3 dims):

    Grad-CAM:    w_k = mean_i dy^c/dA^k_i
    Grad-CAM++:  w_k = sum_i relu(g_i) * a_i,  g = dy^c/dA^k,
                 a_i = g_i^2 / (2 g_i^2 + (sum_j A^k_j) g_i^3)   (0 where g_i = 0)
    map:         L^c = relu(sum_k w_k A^k)

Grad-CAM++'s a_i is the closed form the paper derives for exp(y^c), whose higher
derivatives are powers of the first; pytorch-grad-cam uses it (with eps = 1e-6 in the
denominator) and so does this module.

The map, at the layer's resolution, is resized to the input's spatial size by linear
interpolation (bilinear in 2-D, trilinear in 3-D, half-pixel centres: ``align_corners=False``,
as ``cv2.resize`` in pytorch-grad-cam), then scaled to [0, 1] per sample:
(L - min) / (max - min + 1e-7). Interpolation is affine, so this equals pytorch-grad-cam's
"scale, resize, scale again".

The activations come from a forward hook on ``target_layer``, the gradients from its full
backward hook (``minidl/nn/hooks.py``). The backward pass is ``minidl.autograd.grad`` to the
input, so no parameter's ``.grad`` is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import minidl as md
from minidl import nn
from minidl.nn import functional as F

Target = int | Sequence[int] | np.ndarray | None

_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def grad_cam(
    model: nn.Module, target_layer: nn.Module, x: Any, target: Target = None
) -> np.ndarray:
    """Grad-CAM heatmaps of ``model`` at ``target_layer`` for the class ``target``.

    x: (N, C, *S) with S of 1-3 spatial dims (an array or a Tensor); ``target_layer`` a
    module inside ``model`` whose output is (N, K, *S') and is computed once per forward.
    target: None (each sample's top class), one class for all, or one per sample.
    Returns float32 (N, *S) in [0, 1]. The model runs in eval mode (its mode is restored)."""
    activations, grads = activations_and_gradients(model, target_layer, x, target)
    weights = grads.mean(axis=tuple(range(2, grads.ndim)))
    return _to_heatmap(weights, activations, x)


def grad_cam_plus_plus(
    model: nn.Module, target_layer: nn.Module, x: Any, target: Target = None
) -> np.ndarray:
    """Grad-CAM++ heatmaps; arguments and result as ``grad_cam``."""
    activations, grads = activations_and_gradients(model, target_layer, x, target)
    spatial = tuple(range(2, grads.ndim))
    g2 = grads**2
    g3 = g2 * grads
    total = activations.sum(axis=spatial, keepdims=True)
    alpha = g2 / (2 * g2 + total * g3 + 1e-6)
    alpha = np.where(grads != 0, alpha, 0)
    weights = (np.maximum(grads, 0) * alpha).sum(axis=spatial)
    return _to_heatmap(weights, activations, x)


def activations_and_gradients(
    model: nn.Module, target_layer: nn.Module, x: Any, target: Target = None
) -> tuple[np.ndarray, np.ndarray]:
    """The output A of ``target_layer`` and dy^c/dA, both (N, K, *S') NumPy arrays, with
    y^c the logit of class ``target`` (see ``grad_cam``); the samples' scores are summed
    before the backward pass, which keeps them apart (eval mode: no batch statistics)."""
    seen: dict[str, Any] = {}

    def keep_activations(module: nn.Module, args: tuple, output: Any) -> None:
        if "activations" in seen:
            raise RuntimeError(
                f"grad_cam: target layer {type(module).__name__} ran twice in one forward; "
                "pick a layer that is called once"
            )
        if not isinstance(output, md.Tensor):
            raise TypeError(
                f"grad_cam: target layer {type(module).__name__} returned "
                f"{type(output).__name__}; a Tensor (N, K, *S) is needed"
            )
        seen["activations"] = output.detach().numpy()

    def keep_gradients(module: nn.Module, grad_input: tuple, grad_output: tuple) -> None:
        seen["gradients"] = grad_output[0].numpy()

    handles = [
        target_layer.register_forward_hook(keep_activations),
        target_layer.register_full_backward_hook(keep_gradients),
    ]
    was_training = model.training
    model.eval()
    try:
        with md.enable_grad():
            inputs = md.tensor(x.detach() if isinstance(x, md.Tensor) else x, requires_grad=True)
            scores = model(inputs)
            chosen = _targets(scores, target)
            md.autograd.grad((scores * md.tensor(chosen, dtype=scores.dtype)).sum(), [inputs])
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if "activations" not in seen:
        raise RuntimeError(
            f"grad_cam: target layer {type(target_layer).__name__} was not called by the model"
        )
    return seen["activations"], seen["gradients"]


def _targets(scores: md.Tensor, target: Target) -> np.ndarray:
    """One-hot (N, classes) of the classes whose scores are explained."""
    n, classes = scores.shape
    if target is None:
        index = scores.detach().numpy().argmax(axis=1)
    else:
        index = np.broadcast_to(np.asarray(target, dtype=np.int64), (n,))
    if ((index < 0) | (index >= classes)).any():
        raise ValueError(f"grad_cam: target {index.tolist()} out of range for {classes} classes")
    return np.eye(classes, dtype=np.float32)[index]


def _to_heatmap(weights: np.ndarray, activations: np.ndarray, x: Any) -> np.ndarray:
    """relu(sum_k w_k A^k), (N, K) and (N, K, *S') -> (N, *S) resized to x's size, in [0, 1]."""
    spatial = activations.ndim - 2
    if spatial not in _MODES:
        raise ValueError(
            f"grad_cam: target layer output must be (N, K, *S) with 1-3 spatial dims, "
            f"got shape {activations.shape}"
        )
    weights = weights.reshape(weights.shape + (1,) * spatial)
    cam = np.maximum((weights * activations).sum(axis=1, keepdims=True), 0)
    size = tuple(x.shape[2:])
    if cam.shape[2:] != size:
        cam = F.interpolate(md.tensor(cam), size=size, mode=_MODES[spatial], align_corners=False)
        cam = cam.numpy()
    cam = cam[:, 0]
    axes = tuple(range(1, cam.ndim))
    cam = cam - cam.min(axis=axes, keepdims=True)
    return (cam / (cam.max(axis=axes, keepdims=True) + 1e-7)).astype(np.float32)


def confidence_drop(
    model: nn.Module,
    x: Any,
    heatmaps: np.ndarray,
    fraction: float = 0.1,
    target: Target = None,
    fill: float = 0.0,
) -> np.ndarray:
    """How much the softmax probability of the class falls when the ``fraction`` of each
    sample's positions with the highest heatmap values is set to ``fill`` (all channels):
    the deletion check of pytorch-grad-cam's metrics. A heatmap that finds the evidence
    drops the confidence more than a random one does.
    x: (N, C, *S); heatmaps: (N, *S); returns float (N,) of p(before) - p(after)."""
    x = np.asarray(x.detach().numpy() if isinstance(x, md.Tensor) else x)
    n = len(x)
    flat = heatmaps.reshape(n, -1)
    if flat.shape[1] != int(np.prod(x.shape[2:])):
        raise ValueError(
            f"confidence_drop: heatmaps {heatmaps.shape} do not match inputs {x.shape}"
        )
    count = max(1, round(fraction * flat.shape[1]))
    top = np.argsort(-flat, axis=1, kind="stable")[:, :count]
    removed = x.reshape(n, x.shape[1], -1).copy()
    removed[np.arange(n)[:, None], :, top] = fill
    before = _probabilities(model, x)
    index = before.argmax(1) if target is None else np.broadcast_to(np.asarray(target), (n,))
    after = _probabilities(model, removed.reshape(x.shape))
    rows = np.arange(n)
    return before[rows, index] - after[rows, index]


def _probabilities(model: nn.Module, x: np.ndarray) -> np.ndarray:
    was_training = model.training
    model.eval()
    try:
        with md.no_grad():
            return F.softmax(model(md.tensor(x)), dim=1).numpy()
    finally:
        model.train(was_training)


def overlay(
    image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5, colormap: str = "jet"
) -> np.ndarray:
    """The heatmap in colour over the image, for figures (pytorch-grad-cam's
    ``show_cam_on_image``): (1 - alpha) * image + alpha * colormap(heatmap).

    image: (H, W) grey, (H, W, 1|3) or (1|3, H, W); uint8 or float in [0, 1].
    heatmap: (H, W) in [0, 1]. Returns float32 (H, W, 3) in [0, 1]."""
    from matplotlib import colormaps

    rgb = _as_rgb(image)
    if heatmap.shape != rgb.shape[:2]:
        raise ValueError(f"overlay: heatmap {heatmap.shape} does not match image {image.shape}")
    colour = colormaps[colormap](np.clip(heatmap, 0, 1))[..., :3]
    return ((1 - alpha) * rgb + alpha * colour).astype(np.float32)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    as_float = image.astype(np.float64) / (255.0 if image.dtype == np.uint8 else 1.0)
    if as_float.ndim == 3 and as_float.shape[0] in (1, 3) and as_float.shape[-1] not in (1, 3):
        as_float = as_float.transpose(1, 2, 0)
    if as_float.ndim == 2:
        as_float = as_float[..., None]
    if as_float.ndim != 3 or as_float.shape[-1] not in (1, 3):
        raise ValueError(
            f"overlay: image must be (H, W), (H, W, 1|3) or (1|3, H, W), got {image.shape}"
        )
    as_float = np.clip(as_float, 0, 1)
    return np.repeat(as_float, 3, axis=-1) if as_float.shape[-1] == 1 else as_float
