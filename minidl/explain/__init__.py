"""Explaining a classifier's decision: Grad-CAM and Grad-CAM++ heatmaps (``cam.py``), the
deletion check of a heatmap (``confidence_drop``) and ``overlay`` for figures."""

from minidl.explain.cam import (
    activations_and_gradients,
    confidence_drop,
    grad_cam,
    grad_cam_plus_plus,
    overlay,
)

__all__ = [
    "activations_and_gradients",
    "confidence_drop",
    "grad_cam",
    "grad_cam_plus_plus",
    "overlay",
]
