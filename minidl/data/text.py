"""Plain text for character-level models: read it, map characters to ids and back."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .sources import DataCorruptError, DataNotFoundError, fetch, resolve_root, verify_file

TINYSHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def load_text(path: str | os.PathLike) -> str:
    """The UTF-8 text of a file; bytes that are not UTF-8 raise `DataCorruptError`."""
    path = Path(path)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataCorruptError(f"{path}: not UTF-8 at byte {err.start} ({err.reason})") from err


def load_tinyshakespeare(root: str | os.PathLike | None = None) -> str:
    """Karpathy's tiny Shakespeare (1,115,394 characters), from ``root/text/tinyshakespeare.txt``,
    downloaded and checked against its sha256 if missing."""
    return load_text(
        fetch("text/tinyshakespeare.txt", TINYSHAKESPEARE_URL, TINYSHAKESPEARE_SHA256, root=root)
    )


# The six novels in publication order, with the sha256 of the plain texts (public domain, no
# licence header) that the projects' results were measured on.
JANEAUSTEN = {
    "sensesensibility.txt": "105e1651fe93bed7130078578efd31e0c557d68667ba672ddc876f735b30fe09",
    "prideprejudice.txt": "dfc684d4f857fa938268f9ab9c5567b64bd0691251eca959644adeabe6287a4d",
    "mansfieldpark.txt": "98bc90519cdf4ef663ad7de2734bb529435ef24f7abbde6bb1a50898871dafe9",
    "emma.txt": "7c67b5985c6d0de1efaeb5d342d52cb82c38083c40e2295129e30e87ee690ebe",
    "northangerabbey.txt": "51f91bbe0517db8e65cff009b097ce0a1836124c4e0532ac19e6c0cad982abed",
    "persuasion.txt": "8061549557aebd2fd6e353d18d9197cb707029112bd52d4d8b174583a925848a",
}


def load_janeausten(root: str | os.PathLike | None = None) -> dict[str, str]:
    """Jane Austen's six novels from ``root/text/janeausten/`` (about 4 MB): {file name:
    text} in publication order, each file checked against its sha256."""
    folder = resolve_root(root) / "text" / "janeausten"
    texts = {}
    for name, sha256 in JANEAUSTEN.items():
        path = folder / name
        if not path.is_file():
            raise DataNotFoundError(
                f"{path} does not exist; the novels are public domain (Project Gutenberg): put "
                f"the plain texts of {', '.join(JANEAUSTEN)} in {folder}"
            )
        verify_file(path, sha256)
        texts[name] = load_text(path)
    return texts


class CharVocab:
    """The sorted distinct characters of a text; id i stands for ``chars[i]``.

    encode: str (L characters) -> (L,) int64; decode: ids -> str. Both are vectorised through
    the characters' code points, so a megabyte of text takes milliseconds.
    """

    def __init__(self, chars: Iterable[str]) -> None:
        self.chars = sorted(set(chars))
        self._codes = np.array([ord(c) for c in self.chars], dtype=np.uint32)

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        return cls(text)

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
        ids = np.minimum(np.searchsorted(self._codes, codes), len(self._codes) - 1)
        unknown = self._codes[ids] != codes
        if unknown.any():
            i = int(np.argmax(unknown))
            raise KeyError(f"character {text[i]!r} at position {i} is not in the vocabulary")
        return ids.astype(np.int64)

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise IndexError(f"ids must be in 0..{len(self) - 1}, got {ids.min()}..{ids.max()}")
        return self._codes[ids].astype("<u4").tobytes().decode("utf-32-le")


class BPTTBatches:
    """A token sequence as ``batch_size`` contiguous streams, served in windows of ``bptt``
    steps: the batching of truncated backpropagation through time (char-rnn's, and
    PyTorch's word_language_model example's ``batchify`` / ``get_batch``).

    ids (L,) is cut into ``batch_size`` equal streams of m = (L - 1) // batch_size tokens
    (the remainder dropped); stream i is row i. Batch b is (x, y), both (batch_size, T)
    int64 with T = bptt (the last batch may be shorter unless ``drop_last``):
    x = streams[:, b*bptt : b*bptt + T] and y the token after each of them. Row i of batch b
    continues row i of batch b-1 where it stopped, so a model may carry its hidden state
    (detached) from one batch to the next, and the B rows of a batch come from B distant
    parts of the text.
    """

    def __init__(
        self, ids: np.ndarray, batch_size: int, bptt: int, drop_last: bool = False
    ) -> None:
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise ValueError(f"BPTTBatches: ids must be (L,) integers, got {ids.shape} {ids.dtype}")
        if batch_size < 1 or bptt < 1:
            raise ValueError(
                f"BPTTBatches: batch_size ({batch_size}) and bptt ({bptt}) must be >= 1"
            )
        per_stream = (len(ids) - 1) // batch_size
        if per_stream < (bptt if drop_last else 1):
            raise ValueError(
                f"BPTTBatches: {len(ids)} tokens make streams of {per_stream} tokens for "
                f"batch_size {batch_size}; need at least {bptt if drop_last else 1} (+1 target)"
            )
        used = batch_size * per_stream
        self.inputs = ids[:used].astype(np.int64).reshape(batch_size, per_stream)
        self.targets = ids[1 : used + 1].astype(np.int64).reshape(batch_size, per_stream)
        self.batch_size, self.bptt, self.drop_last = batch_size, bptt, drop_last

    @property
    def tokens(self) -> int:
        """How many (input, target) pairs an epoch serves."""
        return len(self) * self.batch_size * self.bptt if self.drop_last else self.inputs.size

    def __len__(self) -> int:
        per_stream = self.inputs.shape[1]
        return per_stream // self.bptt if self.drop_last else -(-per_stream // self.bptt)

    def __getitem__(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        if not -len(self) <= b < len(self):
            raise IndexError(f"BPTTBatches: batch {b} of {len(self)}")
        start = (b % len(self)) * self.bptt
        window = slice(start, start + self.bptt)
        return self.inputs[:, window], self.targets[:, window]

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for b in range(len(self)):
            yield self[b]
