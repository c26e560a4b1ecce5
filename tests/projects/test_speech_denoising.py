"""speech_denoising: the quick run on the real recordings, splits that share no speaker,
clip or noise segment, mixtures at the requested SNR, and the pieces (the autoencoder's
shapes, the Wiener baseline) on constructed signals."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minidl as md
from minidl.data import data_root
from minidl.metrics import snr
from projects import speech_denoising as sd
from projects.runner import RunContext, run_project

pytest.importorskip("librosa")
HAVE_SPEECH = (
    all((data_root() / f).is_file() for f in sd.DATA)
    and (data_root() / "speech" / "fsdd" / "recordings").is_dir()
)
needs_speech = pytest.mark.skipif(not HAVE_SPEECH, reason="speech data not in MINIDL_DATA")


@needs_speech
def test_quick_run_writes_metrics_wavs_and_figures(tmp_path):
    run_project("speech_denoising", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    sources = ["fsdd", "arctic", "sisec"]
    assert set(report["figures"]) == {
        "learning_curves.png",
        "improvement_by_snr.png",
        *(f"spectrograms_{s}.png" for s in sources),
    }
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
    for source in sources:
        for kind in ("noisy", "wiener", "denoised", "clean"):
            assert (tmp_path / f"{source}_{kind}.wav").stat().st_size > 1000
    results = report["results"]
    rows = results["test_rows"]
    assert {r["source"] for r in rows} == set(sources)
    for row in rows:  # the noisy input has the SNR it was mixed at
        assert row["noisy"]["snr"] == pytest.approx(row["snr_in"], abs=1e-3)
    for level in ("0dB", "5dB", "10dB"):
        noisy = results["test"][level]["noisy"]
        assert noisy["snr_improvement"] == noisy["segsnr_improvement"] == 0.0
        for method in ("wiener", "autoencoder"):
            assert 0 <= results["test"][level][method]["stoi"] <= 1


@needs_speech
def test_splits_share_no_speaker_clip_or_noise_segment():
    data = sd.build_mixtures(RunContext("speech_denoising", data_root(), quick=True))
    speakers = {s: {(m.clip.source, m.clip.speaker) for m in ms} for s, ms in data.items()}
    # A clip's recordings: the FSDD digits of a digit string, the file of a chunk.
    clips = {
        s: {piece.split("#")[0] for m in ms for piece in m.clip.name.split("+")}
        for s, ms in data.items()
    }
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not speakers[a] & speakers[b], (a, b)
        assert not clips[a] & clips[b], (a, b)
    assert ("arctic", "axb") in speakers["test"] and ("sisec", "male4") in speakers["test"]
    recordings = sd._noise_recordings()
    for split, ms in data.items():
        for m in ms:
            lo, hi = sd.NOISE_PARTS[split]
            length = len(recordings[m.noise])
            # Each segment lies inside its split's part of the recording; the parts do not
            # overlap, so neither do the segments of different splits.
            assert int(lo * length) <= m.start < m.stop <= int(hi * length)
            assert snr(m.clip.wave, m.noisy) == pytest.approx(m.snr_db, abs=1e-3)
    # Every test SNR meets every noise: noise and SNR are not confounded.
    pairs = {(m.snr_db, m.noise) for m in data["test"]}
    assert pairs == {(float(s), n) for s in sd.SNRS for n in sd.NOISES}


def test_autoencoder_keeps_the_shape_and_gives_a_mask():
    md.manual_seed(0)
    model = sd.SpectralAutoencoder(129)
    mask = model(md.randn(2, 129, 64)).numpy()
    assert mask.shape == (2, 129, 64) and ((mask > 0) & (mask < 1)).all()
    scale = sd.Standardiser(np.zeros((129, 1), np.float32), np.ones((129, 1), np.float32))
    wave = np.random.default_rng(0).standard_normal(3001).astype(np.float32) * 0.05
    assert sd.enhance(model, scale, wave).shape == wave.shape  # an odd number of frames


def test_wiener_filter_cleans_a_tone_in_white_noise():
    t = np.arange(16000) / sd.SR
    clean = (0.1 * np.sin(2 * np.pi * 440 * t) * (t > 0.5)).astype(np.float32)
    noise = np.random.default_rng(0).standard_normal(len(t)).astype(np.float32)
    noisy, _ = sd.mix_at_snr(clean, noise, 0.0)
    assert snr(clean, sd.wiener(noisy)) > snr(clean, noisy) + 8
