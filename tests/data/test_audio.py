import wave

import numpy as np
import pytest

from minidl.data import DataCorruptError, DataNotFoundError, load_fsdd, read_wav

pytest.importorskip("soundfile")


def write_wav(path, samples: np.ndarray, rate: int = 8000, channels: int = 1) -> None:
    """16-bit PCM with the standard library's wave module."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


@pytest.fixture
def fsdd(tmp_path):
    folder = tmp_path / "speech" / "fsdd" / "recordings"
    rng = np.random.default_rng(0)
    written = {}
    for digit in (0, 7):
        for speaker in ("theo", "george"):
            for index in (0, 4, 5, 10):
                samples = rng.integers(-3000, 3000, 100 + index, dtype=np.int16)
                write_wav(folder / f"{digit}_{speaker}_{index}.wav", samples)
                written[(digit, speaker, index)] = samples
    return tmp_path, written


def test_read_wav_scales_pcm16_to_floats(tmp_path):
    samples = np.array([0, 16384, -32768, 32767], dtype=np.int16)
    write_wav(tmp_path / "a.wav", samples, rate=16000)
    wave_data, rate = read_wav(tmp_path / "a.wav")
    assert rate == 16000 and wave_data.dtype == np.float32
    np.testing.assert_allclose(wave_data, samples / 32768)


def test_fsdd_splits_order_and_labels(fsdd):
    root, written = fsdd
    test = load_fsdd("test", root=root)
    assert len(test.waves) == 8 and test.sample_rate == 8000 and test.classes[7] == "7"
    assert test.targets.tolist() == [0, 0, 0, 0, 7, 7, 7, 7]
    assert test.speakers == ["george", "george", "theo", "theo"] * 2
    np.testing.assert_allclose(test.waves[0], written[(0, "george", 0)] / 32768)
    train = load_fsdd("train", root=root)
    assert len(train.waves) == 8 and [len(w) for w in train.waves[:2]] == [105, 110]  # 5 < 10
    assert len(load_fsdd(root=root).waves) == 16


def test_fsdd_bad_name_corrupt_file_and_missing_folder(fsdd, tmp_path):
    root, _ = fsdd
    folder = root / "speech" / "fsdd" / "recordings"
    (folder / "seven.wav").write_bytes(b"")
    with pytest.raises(DataCorruptError, match=r"seven\.wav: name is not"):
        load_fsdd(root=root)
    (folder / "seven.wav").unlink()
    (folder / "7_theo_5.wav").write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(DataCorruptError, match=r"7_theo_5\.wav: not a readable sound file"):
        load_fsdd(root=root)
    with pytest.raises(DataNotFoundError, match="free-spoken-digit-dataset"):
        load_fsdd(root=tmp_path / "nowhere")


def test_fsdd_rejects_mixed_sample_rates(fsdd):
    root, _ = fsdd
    write_wav(root / "speech" / "fsdd" / "recordings" / "7_theo_5.wav", np.zeros(50), rate=16000)
    with pytest.raises(DataCorruptError, match=r"7_theo_5\.wav: expected mono at 8000 Hz"):
        load_fsdd(root=root)
