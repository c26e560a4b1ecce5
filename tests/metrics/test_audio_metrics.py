"""minidl.metrics.audio and minidl.data.mix_at_snr on constructed signals: a mixture made
at a requested SNR measures that SNR, and segmental SNR is the clipped mean of known
per-frame SNRs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeds

import minidl as md
from minidl.data import mix_at_snr
from minidl.metrics import segmental_snr, snr


@given(seeds, st.floats(-10, 30))
def test_mixing_at_a_requested_snr_gives_that_snr(seed, snr_db):
    rng = np.random.default_rng(seed)
    clean = np.sin(np.arange(4000) * 0.05).astype(np.float32) * rng.uniform(0.1, 1.0)
    noise = rng.standard_normal(4000).astype(np.float32) * rng.uniform(0.01, 3.0)
    mixture, scaled = mix_at_snr(clean, noise, snr_db)
    assert mixture.dtype == np.float32 and mixture.shape == clean.shape
    np.testing.assert_allclose(mixture, clean + scaled, rtol=1e-6)
    # The estimate "mixture" of the reference "clean" has error = the scaled noise.
    assert snr(clean, mixture) == pytest.approx(snr_db, abs=1e-3)
    measured = 10 * np.log10(np.sum(clean.astype(np.float64) ** 2) / np.sum(scaled**2.0))
    assert measured == pytest.approx(snr_db, abs=1e-3)


def test_mixing_checks_shapes_and_energy():
    with pytest.raises(ValueError, match=r"mix_at_snr.*\(10,\) and \(9,\)"):
        mix_at_snr(np.ones(10), np.ones(9), 5.0)
    with pytest.raises(ValueError, match="energy"):
        mix_at_snr(np.ones(10), np.zeros(10), 5.0)


def test_snr_of_known_error_perfect_copy_and_tensors():
    s = np.ones(100)
    assert snr(s, s + 0.1) == pytest.approx(20.0)  # 10 log10(100 / (100 * 0.01))
    assert snr(s, s) == np.inf
    assert snr(md.tensor(s), md.tensor(s * 0.9)) == pytest.approx(20.0, abs=1e-5)
    with pytest.raises(ValueError, match=r"snr: .*\(100,\) and \(99,\)"):
        snr(s, s[:99])


def test_segmental_snr_is_the_mean_of_per_frame_snrs():
    """Four frames of 100 samples with error levels that give 0, 10, 20 and 30 dB."""
    rng = np.random.default_rng(0)
    frame = 100
    reference = rng.standard_normal(4 * frame)
    error = np.empty_like(reference)
    for k, db in enumerate([0, 10, 20, 30]):
        part = rng.standard_normal(frame)
        s = reference[k * frame : (k + 1) * frame]
        error[k * frame : (k + 1) * frame] = part * np.sqrt(
            np.sum(s**2) / (np.sum(part**2) * 10 ** (db / 10))
        )
    estimate = reference + error
    assert segmental_snr(reference, estimate, frame=frame) == pytest.approx(15.0)
    # A tail shorter than a frame is left out.
    assert segmental_snr(np.r_[reference, 1.0], np.r_[estimate, 5.0], frame=frame) == (
        pytest.approx(15.0)
    )
    # Unlike the global SNR, which the loud error frame (0 dB) dominates:
    assert snr(reference, estimate) < 7.0


def test_segmental_snr_clips_silent_and_perfect_frames():
    reference = np.r_[np.zeros(50), np.ones(50), np.ones(50)]
    estimate = np.r_[np.full(50, 0.1), np.ones(50), np.full(50, 1e-9)]
    # frames: no signal (-> -10 dB), exact (-> +35 dB), ~0 dB error (about 0 dB)
    expected = (-10 + 35 + 10 * np.log10(50 / (50 * (1 - 1e-9) ** 2))) / 3
    assert segmental_snr(reference, estimate, frame=50) == pytest.approx(expected)
    assert segmental_snr(reference, estimate, frame=50, bounds=(-20, 50)) == pytest.approx(
        (-20 + 50 + 0) / 3, abs=1e-6
    )
    with pytest.raises(ValueError, match="at least one frame"):
        segmental_snr(np.ones(10), np.ones(10), frame=20)
