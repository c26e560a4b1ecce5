"""Speech-enhancement scores on waveforms (NumPy arrays or tensors, outside the graph): the
signal-to-noise ratio of an estimate against its clean reference, and the segmental SNR,
its mean over short frames (which weighs quiet passages as much as loud ones).

STOI and PESQ, the perceptual scores, come from the ``pystoi`` and ``pesq`` packages
(extra ``projects``); they are not rewritten here."""

from __future__ import annotations

from typing import Any

import numpy as np

from .image import as_array

# ITU-T P.56-style bounds of segmental SNR: a silent frame would give -inf dB, a perfect
# frame +inf, and either would swamp the mean (Hansen & Pellom 1998 use -10 and 35 dB).
SEGMENTAL_SNR_RANGE = (-10.0, 35.0)


def snr(reference: Any, estimate: Any) -> float:
    """SNR in dB of ``estimate`` against ``reference`` (both (T,)):
    ``10 log10(sum(s**2) / sum((s - s_hat)**2))``; +inf for an exact estimate."""
    s, e = _pair(reference, estimate, "snr")
    error = np.sum((s - e) ** 2)
    signal = np.sum(s**2)
    if error == 0:
        return float("inf")
    return float(10 * np.log10(signal / error)) if signal > 0 else float("-inf")


def segmental_snr(
    reference: Any,
    estimate: Any,
    frame: int = 256,
    hop: int | None = None,
    bounds: tuple[float, float] = SEGMENTAL_SNR_RANGE,
) -> float:
    """Mean over frames of each frame's SNR in dB, each clipped to ``bounds``.

    reference, estimate: (T,); frames of ``frame`` samples every ``hop`` (default
    ``frame``, no overlap); the tail shorter than a frame is left out. A frame's SNR is
    ``10 log10(sum(s**2) / sum((s - s_hat)**2))``, with a frame of no error at the upper
    bound and a frame of no signal (but some error) at the lower one."""
    s, e = _pair(reference, estimate, "segmental_snr")
    hop = frame if hop is None else hop
    if frame < 1 or hop < 1 or len(s) < frame:
        raise ValueError(
            f"segmental_snr: need frame, hop >= 1 and at least one frame of {frame} samples; "
            f"got frame={frame}, hop={hop}, T={len(s)}"
        )
    starts = np.arange(0, len(s) - frame + 1, hop)
    index = starts[:, None] + np.arange(frame)[None, :]  # (frames, frame)
    signal = np.sum(s[index] ** 2, axis=1)
    error = np.sum((s[index] - e[index]) ** 2, axis=1)
    low, high = bounds
    with np.errstate(divide="ignore"):
        ratio = 10 * np.log10(signal / np.where(error > 0, error, 1.0))
    ratio = np.where(error == 0, high, np.where(signal == 0, low, ratio))
    return float(np.mean(np.clip(ratio, low, high)))


def _pair(reference: Any, estimate: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    s, e = as_array(reference).astype(np.float64), as_array(estimate).astype(np.float64)
    if s.ndim != 1 or s.shape != e.shape:
        raise ValueError(
            f"{name}: reference and estimate must be waveforms (T,) of one length, "
            f"got {s.shape} and {e.shape}"
        )
    return s, e
