"""WAV audio, the Free Spoken Digit Dataset (FSDD): recordings named
``{digit}_{speaker}_{index}.wav``, 8 kHz mono, and noisy speech made from clean speech and
noise at a chosen signal-to-noise ratio (``mix_at_snr``)."""

from __future__ import annotations

import os
import re
from typing import NamedTuple

import numpy as np

from .sources import DataCorruptError, DataNotFoundError, resolve_root

FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset"
_FSDD_NAME = re.compile(r"(\d)_([A-Za-z]+)_(\d+)\.wav")


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """(samples, sample rate): float32 in [-1, 1], (T,) for mono or (T, channels).

    Needs soundfile (extra ``minidl[projects]``); imported here so the rest of the package
    works without it.
    """
    try:
        import soundfile
    except ImportError as err:
        raise ImportError(
            "reading WAV files needs soundfile: pip install 'minidl[projects]'"
        ) from err
    try:
        samples, rate = soundfile.read(str(path), dtype="float32")
    except RuntimeError as err:  # soundfile's LibsndfileError
        raise DataCorruptError(f"{path}: not a readable sound file ({err})") from err
    return samples, rate


class SpokenDigits(NamedTuple):
    """waves: N recordings of different lengths, each (T_i,) float32; targets: (N,) int64
    digits; speakers: N names; sample_rate: Hz; classes: '0'..'9'."""

    waves: list[np.ndarray]
    targets: np.ndarray
    speakers: list[str]
    sample_rate: int
    classes: list[str]


def load_fsdd(split: str = "all", root: str | os.PathLike | None = None) -> SpokenDigits:
    """FSDD recordings from ``root/speech/fsdd/recordings/``.

    split: 'train' (indices 5-49), 'test' (indices 0-4, the dataset's own convention) or 'all'.
    Sorted by digit, speaker, index. Every file must match the naming pattern and share one
    sample rate; the first that does not is named in the error.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    folder = resolve_root(root) / "speech" / "fsdd" / "recordings"
    if not folder.is_dir():
        raise DataNotFoundError(
            f"{folder} does not exist; put the 'recordings' folder of {FSDD_URL} there"
        )
    entries = []
    for path in folder.glob("*.wav"):
        match = _FSDD_NAME.fullmatch(path.name)
        if match is None:
            raise DataCorruptError(f"{path}: name is not {{digit}}_{{speaker}}_{{index}}.wav")
        digit, speaker, index = int(match[1]), match[2], int(match[3])
        if split == "all" or (index < 5) == (split == "test"):
            entries.append((digit, speaker, index, path))
    if not entries:
        raise DataNotFoundError(
            f"{folder}: no {split} recording named {{digit}}_{{speaker}}_{{index}}.wav"
        )
    entries.sort()
    waves, rate = [], None
    for *_, path in entries:
        samples, file_rate = read_wav(path)
        if samples.ndim != 1 or (rate is not None and file_rate != rate):
            raise DataCorruptError(
                f"{path}: expected mono at {rate or file_rate} Hz, "
                f"got shape {samples.shape} at {file_rate} Hz"
            )
        waves.append(samples)
        rate = file_rate
    targets = np.array([e[0] for e in entries], dtype=np.int64)
    return SpokenDigits(waves, targets, [e[1] for e in entries], rate, [str(d) for d in range(10)])


def mix_at_snr(
    clean: np.ndarray, noise: np.ndarray, snr_db: float
) -> tuple[np.ndarray, np.ndarray]:
    """(mixture, scaled noise): ``clean + g * noise`` with the gain g that makes
    ``10 log10(sum(clean**2) / sum((g * noise)**2)) == snr_db``.

    clean, noise: (T,) waveforms of one length (cut the noise segment to the clean clip
    first); both must hold some energy. Returned in clean's dtype."""
    clean, noise = np.asarray(clean), np.asarray(noise)
    if clean.ndim != 1 or clean.shape != noise.shape:
        raise ValueError(
            f"mix_at_snr: clean and noise must be waveforms (T,) of one length, "
            f"got {clean.shape} and {noise.shape}"
        )
    p_clean = np.sum(clean.astype(np.float64) ** 2)
    p_noise = np.sum(noise.astype(np.float64) ** 2)
    if p_clean == 0 or p_noise == 0:
        raise ValueError(
            f"mix_at_snr: clean energy {p_clean} and noise energy {p_noise} must be > 0"
        )
    gain = np.sqrt(p_clean / (p_noise * 10 ** (snr_db / 10)))
    scaled = (gain * noise).astype(clean.dtype)
    return clean + scaled, scaled
