"""Keras's imdb.npz (object arrays of word-rank lists) and imdb_word_index.json, on
fixtures written the way Keras's file is: ``np.savez`` of object arrays of Python lists."""

import hashlib
import json
import os

import numpy as np
import pytest

from minidl.data import (
    DataCorruptError,
    DataNotFoundError,
    load_keras_imdb,
    load_keras_imdb_word_index,
)
from minidl.data import keras_imdb as module

TRAIN = [[1, 2, 3], [4, 1], [7, 7, 7, 7, 2], [5]]
TRAIN_Y = [1, 0, 1, 0]
TEST = [[2, 9], [1, 1, 1]]
TEST_Y = [0, 1]


def objects(lists):
    out = np.empty(len(lists), dtype=object)  # ragged: one Python list per review
    out[:] = [list(x) for x in lists]
    return out


def write_imdb(root, monkeypatch, **arrays):
    arrays = {
        "x_train": objects(TRAIN),
        "y_train": np.array(TRAIN_Y),
        "x_test": objects(TEST),
        "y_test": np.array(TEST_Y),
        **arrays,
    }
    path = root / "imdb" / "imdb.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    # A fixture is not the published file: its own digest stands in for the published one.
    monkeypatch.setattr(module, "IMDB_NPZ_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    return path


def keras_order(n_train, n_test, seed=113):
    """The order keras.datasets.imdb.load_data shuffles into: one RandomState, train first."""
    rng = np.random.RandomState(seed)
    train, test = np.arange(n_train), np.arange(n_test)
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def test_defaults_shift_prepend_and_shuffle_as_keras(tmp_path, monkeypatch):
    write_imdb(tmp_path, monkeypatch)
    data, targets, classes = load_keras_imdb("train", root=tmp_path)
    order, test_order = keras_order(4, 2)
    assert classes == ["neg", "pos"] and targets.dtype == np.int64
    assert targets.tolist() == [TRAIN_Y[i] for i in order]
    # index_from=3, start_char=1 in front; num_words=None is the largest shifted index (12,
    # from the 9 of the test split), exclusive as in Keras, so 12 itself becomes oov_char=2.
    for seq, i in zip(data, order, strict=True):
        assert seq.dtype == np.int64 and seq.tolist() == [1, *(w + 3 for w in TRAIN[i])]
    test = load_keras_imdb("test", root=tmp_path)
    first = TEST[test_order[0]]
    assert test.data[0].tolist() == [1, *(w + 3 if w + 3 < 12 else 2 for w in first)]
    assert test.targets.tolist() == [TEST_Y[i] for i in test_order]


def test_num_words_skip_top_maxlen_and_no_oov(tmp_path, monkeypatch):
    write_imdb(tmp_path, monkeypatch)
    order, _ = keras_order(4, 2, seed=0)
    got = load_keras_imdb(root=tmp_path, seed=0, num_words=6, skip_top=5)
    for seq, i in zip(got.data, order, strict=True):  # only index 5 (rank 2) survives
        assert seq.tolist() == [2] + [5 if w + 3 == 5 else 2 for w in TRAIN[i]]
    dropped = load_keras_imdb(root=tmp_path, seed=0, num_words=6, oov_char=None)
    for seq, i in zip(dropped.data, order, strict=True):
        assert seq.tolist() == [1, *(w + 3 for w in TRAIN[i] if w + 3 < 6)]
    # maxlen drops (Keras does not truncate) sequences whose length with start_char >= maxlen
    short = load_keras_imdb(root=tmp_path, seed=0, maxlen=4)
    kept = [i for i in order if len(TRAIN[i]) + 1 < 4]
    assert [s.tolist()[1:] for s in short.data] == [[w + 3 for w in TRAIN[i]] for i in kept]
    assert short.targets.tolist() == [TRAIN_Y[i] for i in kept]
    with pytest.raises(ValueError, match="maxlen=2"):
        load_keras_imdb(root=tmp_path, maxlen=2)


def test_pickle_that_runs_code_is_refused(tmp_path, monkeypatch):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    bad = np.empty(4, dtype=object)
    bad[:] = [Exploit(), [1], [2], [3]]
    path = write_imdb(tmp_path, monkeypatch, x_train=bad)
    with pytest.raises(DataCorruptError, match=rf"{path}: not a readable .*refusing .*system"):
        load_keras_imdb(root=tmp_path)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"y_train": np.array([1, 0, 1])}, r"x_train \(4,\) and y_train \(3,\)"),
        ({"y_test": np.array([0, 5])}, r"x_test .* labels 0/1"),
        ({"x_test": objects([[1, -2], [3]])}, r"x_test\[0\] is not a list of word indices"),
        ({"x_test": objects([["a"], [3]])}, r"x_test\[0\] is not a list of word indices"),
    ],
)
def test_malformed_arrays_name_the_file(tmp_path, monkeypatch, arrays, message):
    write_imdb(tmp_path, monkeypatch, **arrays)
    with pytest.raises(DataCorruptError, match=rf"imdb\.npz: {message}"):
        load_keras_imdb(root=tmp_path)


def test_missing_member_damage_and_checksum(tmp_path, monkeypatch):
    path = write_imdb(tmp_path, monkeypatch)
    with np.load(path, allow_pickle=True) as npz:
        partial = {k: npz[k] for k in ("x_train", "y_train", "x_test")}
    np.savez(path, **partial)
    monkeypatch.setattr(module, "IMDB_NPZ_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    with pytest.raises(DataCorruptError, match=r"imdb\.npz: no y_test array"):
        load_keras_imdb(root=tmp_path)
    path = write_imdb(tmp_path, monkeypatch)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 300])
    monkeypatch.setattr(module, "IMDB_NPZ_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    with pytest.raises(DataCorruptError, match=r"imdb\.npz: not a readable imdb\.npz"):
        load_keras_imdb(root=tmp_path)
    monkeypatch.setattr(module, "IMDB_NPZ_SHA256", "0" * 64)  # not the published file
    with pytest.raises(DataCorruptError, match=r"imdb\.npz: sha256 is"):
        load_keras_imdb(root=tmp_path)


def test_missing_files_offline_name_url_and_folder(tmp_path):
    with pytest.raises(DataNotFoundError) as err:
        load_keras_imdb(root=tmp_path)
    assert module.ORIGIN + "imdb.npz" in str(err.value) and str(tmp_path / "imdb") in str(err.value)
    with pytest.raises(DataNotFoundError, match=r"imdb_word_index\.json"):
        load_keras_imdb_word_index(root=tmp_path)


def test_word_index(tmp_path, monkeypatch):
    path = tmp_path / "imdb" / "imdb_word_index.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"the": 1, "and": 2, "film": 19}))
    monkeypatch.setattr(module, "WORD_INDEX_MD5", hashlib.md5(path.read_bytes()).hexdigest())
    index = load_keras_imdb_word_index(root=tmp_path)
    assert index == {"the": 1, "and": 2, "film": 19}
    write_imdb(tmp_path, monkeypatch, x_train=objects([[19, 1], [2], [1], [1]]))
    words = {rank + 3: word for word, rank in index.items()}  # index_from=3, Keras's recipe
    first = load_keras_imdb(root=tmp_path, seed=0, num_words=10_000).data
    assert any([words.get(i, "?") for i in s[1:]] == ["film", "the"] for s in first)
    path.write_text(json.dumps({"the": "one"}))
    monkeypatch.setattr(module, "WORD_INDEX_MD5", hashlib.md5(path.read_bytes()).hexdigest())
    with pytest.raises(DataCorruptError, match=r"imdb_word_index\.json: expected an object"):
        load_keras_imdb_word_index(root=tmp_path)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"num_words": 40, "skip_top": 5},
        {"maxlen": 12, "seed": 7},
        {"num_words": 30, "oov_char": None},
        {"start_char": None, "index_from": 0},
    ],
)
def test_same_as_keras_load_data(tmp_path, monkeypatch, options):
    """keras.datasets.imdb.load_data on the same file (Keras reads it with allow_pickle=True;
    its download is replaced by the fixture's path). Skipped where Keras is not installed."""
    monkeypatch.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "torch"))
    pytest.importorskip("keras")
    from keras.src.datasets import imdb as keras_imdb

    rng = np.random.default_rng(0)
    x = {s: [rng.integers(1, 60, rng.integers(1, 20)).tolist() for _ in range(n)] for s, n in
         (("train", 30), ("test", 20))}  # fmt: skip
    path = write_imdb(
        tmp_path,
        monkeypatch,
        x_train=objects(x["train"]),
        y_train=rng.integers(0, 2, 30),
        x_test=objects(x["test"]),
        y_test=rng.integers(0, 2, 20),
    )
    monkeypatch.setattr(keras_imdb, "get_file", lambda **kwargs: str(path))
    (x_train, y_train), (x_test, y_test) = keras_imdb.load_data(**options)
    for split, xs, ys in (("train", x_train, y_train), ("test", x_test, y_test)):
        ours = load_keras_imdb(split, root=tmp_path, **options)
        assert [s.tolist() for s in ours.data] == [list(map(int, s)) for s in xs]
        assert ours.targets.tolist() == np.asarray(ys).tolist()
