"""The IMDB reviews as Keras ships them: ``imdb.npz`` holds 25,000 train and 25,000 test
reviews already turned into word indices (``x_train``, ``x_test``: object arrays of lists of
ints, index i = the i-th most frequent word of the training reviews; ``y_train``, ``y_test``:
0 = negative, 1 = positive), and ``imdb_word_index.json`` maps each word to its index.

``load_keras_imdb`` returns what ``keras.datasets.imdb.load_data`` returns, with its
arguments and defaults: both splits shuffled by one ``RandomState(seed)``, indices shifted
by `index_from` with `start_char` in front, sequences of `maxlen` or more dropped (Keras
drops, it does not truncate), and indices outside ``skip_top <= i < num_words`` replaced by
`oov_char`. ``num_words=None`` takes the largest index over both splits, as Keras does
(so that one word, the rarest, becomes `oov_char` too: Keras's bound is exclusive).

The object arrays are pickles; NumPy's ``allow_pickle=True`` would run any callable a file
names, so they are read with the restricted unpickler of the CIFAR loader instead.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from .cifar import _ArrayUnpickler
from .dataset import LabeledData
from .sources import DataCorruptError, fetch

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
IMDB_NPZ_SHA256 = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
WORD_INDEX_MD5 = "bfafd718b763782e994055a2d397834f"  # Keras publishes an MD5 for this file
CLASSES = ["neg", "pos"]
_MEMBERS = ("x_train", "y_train", "x_test", "y_test")


def _read_npy(member: IO[bytes], where: str) -> np.ndarray:
    """One .npy member; an object array's pickle goes through the restricted unpickler."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise DataCorruptError(f"{where}: .npy format version {version} is not read here")
    if not dtype.hasobject:
        count = int(np.prod(shape))
        data = np.frombuffer(member.read(count * dtype.itemsize), dtype, count)
        if data.size != count:
            raise DataCorruptError(f"{where}: {data.size} values where {shape} needs {count}")
        return data.reshape(shape, order="F" if fortran else "C")
    # encoding='latin1': how NumPy reads the object arrays that Python 2 pickled
    array = _ArrayUnpickler(member, encoding="latin1").load()
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise DataCorruptError(f"{where}: the pickled object array is not an array of {shape}")
    return array


def read_imdb_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The four arrays of a Keras ``imdb.npz``, read and checked; errors name the file."""
    arrays = {}
    try:
        with zipfile.ZipFile(path) as npz:
            names = set(npz.namelist())
            for key in _MEMBERS:
                if f"{key}.npy" not in names:
                    raise DataCorruptError(f"{path}: no {key} array; it has {sorted(names)}")
                with npz.open(f"{key}.npy") as member:  # reading to the end checks the CRC
                    arrays[key] = _read_npy(member, f"{path}:{key}")
                    member.read()
    except DataCorruptError:  # a ValueError too, already naming the file
        raise
    except (
        OSError,  # includes zipfile's bad CRC
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        zipfile.BadZipFile,
        pickle.UnpicklingError,  # includes a refused global
    ) as err:
        raise DataCorruptError(f"{path}: not a readable imdb.npz ({err})") from err
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 1 or y.shape != x.shape or not np.isin(y, (0, 1)).all():
            raise DataCorruptError(
                f"{path}: x_{split} {x.shape} and y_{split} {y.shape} must be N sequences "
                f"and N labels 0/1"
            )
        arrays[f"x_{split}"] = _word_arrays(x, f"{path}: x_{split}")
    return arrays


def _word_arrays(sequences: np.ndarray, where: str) -> np.ndarray:
    """Object array of N lists -> object array of N int64 arrays, each checked."""
    out = np.empty(len(sequences), dtype=object)
    for i, seq in enumerate(sequences):
        words = np.asarray(seq)
        if words.ndim != 1 or (words.size and (words.dtype.kind not in "iu" or words.min() < 0)):
            raise DataCorruptError(f"{where}[{i}] is not a list of word indices")
        out[i] = words.astype(np.int64)
    return out


def _encode(
    sequences: list[np.ndarray],
    num_words: int,
    skip_top: int,
    start_char: int | None,
    oov_char: int | None,
    index_from: int,
) -> list[np.ndarray]:
    """Keras's index arithmetic on shuffled, length-filtered sequences of word ranks."""
    out = []
    for seq in sequences:
        words = seq + index_from
        if start_char is not None:
            words = np.concatenate([[start_char], words]).astype(np.int64)
        inside = (words >= skip_top) & (words < num_words)
        out.append(np.where(inside, words, oov_char) if oov_char is not None else words[inside])
    return out


def load_keras_imdb(
    split: str = "train",
    root: str | os.PathLike | None = None,
    num_words: int | None = None,
    skip_top: int = 0,
    maxlen: int | None = None,
    seed: int = 113,
    start_char: int | None = 1,
    oov_char: int | None = 2,
    index_from: int = 3,
) -> LabeledData:
    """``keras.datasets.imdb.load_data(...)``'s train or test half, from
    ``root/imdb/imdb.npz`` (downloaded and sha256-checked when missing).

    data: list of N int64 arrays of word indices (variable lengths); targets: (N,) int64,
    0 = neg, 1 = pos. Both splits are read because ``num_words=None`` means the largest
    index over both, as in Keras.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = fetch("imdb/imdb.npz", ORIGIN + "imdb.npz", IMDB_NPZ_SHA256, root=root)
    arrays = read_imdb_npz(path)
    rng = np.random.RandomState(seed)  # Keras's generator and order: train, then test
    halves = {}
    for name in ("train", "test"):
        order = np.arange(len(arrays[f"x_{name}"]))
        rng.shuffle(order)
        x, y = arrays[f"x_{name}"][order], arrays[f"y_{name}"][order].astype(np.int64)
        extra = 1 if start_char is not None else 0
        if maxlen:
            keep = np.array([len(s) + extra < maxlen for s in x], dtype=bool)
            x, y = x[keep], y[keep]
        halves[name] = (x, y)
    if not num_words:  # as Keras: the largest index after the shift, itself excluded
        shifted = [int(q.max()) + index_from for h in halves.values() for q in h[0] if q.size]
        num_words = max([*shifted, start_char or 0])
    x, y = halves[split]
    if maxlen and (len(halves["train"][0]) == 0 or len(halves["test"][0]) == 0):
        raise ValueError(f"no sequence is shorter than maxlen={maxlen}; increase maxlen")
    return LabeledData(
        _encode(list(x), num_words, skip_top, start_char, oov_char, index_from), y, CLASSES
    )


def load_keras_imdb_word_index(root: str | os.PathLike | None = None) -> dict[str, int]:
    """``keras.datasets.imdb.get_word_index()``: word -> rank (1 = most frequent), from
    ``root/imdb/imdb_word_index.json`` (downloaded and MD5-checked when missing). Index i in
    ``load_keras_imdb`` data is the word of rank ``i - index_from``."""
    path = Path(
        fetch(
            "imdb/imdb_word_index.json",
            ORIGIN + "imdb_word_index.json",
            md5=WORD_INDEX_MD5,
            root=root,
        )
    )
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataCorruptError(f"{path}: not a JSON word index ({err})") from err
    if not isinstance(index, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and v > 0 for k, v in index.items()
    ):
        raise DataCorruptError(f"{path}: expected an object of word -> positive integer rank")
    return index
