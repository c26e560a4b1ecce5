"""Evaluation metrics on NumPy arrays or tensors (outside the graph): image quality
(``psnr``) and binary detection scores over anomaly scores (scikit-learn's metrics, with the
threshold choice written out)."""

from .detection import best_f1_threshold, detection_report
from .image import psnr

__all__ = ["best_f1_threshold", "detection_report", "psnr"]
