"""Image reconstruction quality."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_array(x: Any) -> np.ndarray:
    """A Tensor (any device) or array-like as a NumPy array."""
    return x.numpy() if hasattr(x, "numpy") and not isinstance(x, np.ndarray) else np.asarray(x)


def psnr(input: Any, target: Any, data_range: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio of each sample, in dB: (N,) for inputs (N, ...).

    PSNR_i = 10 log10(data_range^2 / MSE_i), MSE_i the mean squared error over sample i's
    values; infinite where the sample is reproduced exactly. Average the result for the
    usual "mean PSNR" of a test set (that is not the PSNR of the mean MSE).
    """
    a, b = as_array(input).astype(np.float64), as_array(target).astype(np.float64)
    if a.shape != b.shape or a.ndim < 1:
        raise ValueError(f"psnr: input {a.shape} and target {b.shape} must match, (N, ...)")
    if data_range <= 0:
        raise ValueError(f"psnr: data_range must be > 0, got {data_range}")
    mse = ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10 * np.log10(data_range**2 / mse)
