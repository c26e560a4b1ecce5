"""Plain text for character-level models: read it, map characters to ids and back."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .sources import DataCorruptError, fetch

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
