"""Words to ids and back: a tokenizer and a word-level ``Vocab``, after torchtext.

Build the vocabulary from the training split only (words seen only in validation or test
data must map to the unknown token, or the evaluation leaks), with special tokens first
(``<pad>`` = 0 so that padding is id 0, ``<unk>`` for every word not kept), words kept when
they occur at least ``min_freq`` times, the most frequent first, up to ``max_size`` entries.

    tokenize = get_tokenizer("basic_english")
    vocab = Vocab.from_texts(train_texts, tokenize, min_freq=2, max_size=20000)
    ids, lengths = vocab.encode_batch(test_texts, max_len=200)   # (N, 200), (N,)
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import numpy as np

# torchtext's basic_english: each pattern becomes its replacement, in this order.
_BASIC_ENGLISH = [
    (re.compile(r"\'"), " '  "),
    (re.compile(r"\""), ""),
    (re.compile(r"\."), " . "),
    (re.compile(r"<br \/>"), " "),
    (re.compile(r","), " , "),
    (re.compile(r"\("), " ( "),
    (re.compile(r"\)"), " ) "),
    (re.compile(r"\!"), " ! "),
    (re.compile(r"\?"), " ? "),
    (re.compile(r"\;"), " "),
    (re.compile(r"\:"), " "),
    (re.compile(r"\s+"), " "),
]


def basic_english(text: str) -> list[str]:
    """torchtext's ``basic_english``: lower-case; ``. , ( ) ! ?`` and ``'`` become tokens of
    their own; ``"``, ``;``, ``:`` and HTML line breaks are dropped; split on white space."""
    text = text.lower()
    for pattern, replacement in _BASIC_ENGLISH:
        text = pattern.sub(replacement, text)
    return text.split()


def get_tokenizer(name: str | None) -> Callable[[str], list[str]]:
    """``"basic_english"`` (see ``basic_english``) or ``None`` (split on white space), as
    torchtext's ``get_tokenizer``."""
    if name is None:
        return str.split
    if name == "basic_english":
        return basic_english
    raise ValueError(f"get_tokenizer: unknown tokenizer {name!r} (have 'basic_english', None)")


class Vocab:
    """A list of tokens; token ``itos[i]`` has id ``i``.

    ``vocab[token]`` is its id, or the default index (``set_default_index``, e.g. the
    ``<unk>`` id) for a token not in it, else ``KeyError``. ``encode`` / ``decode`` go
    between texts and id arrays with the vocabulary's tokenizer.
    """

    def __init__(
        self,
        tokens: Sequence[str],
        tokenizer: Callable[[str], list[str]] | None = None,
        default_index: int | None = None,
    ) -> None:
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            repeated = [t for t, n in Counter(self.itos).items() if n > 1]
            raise ValueError(f"Vocab: tokens appear more than once: {repeated[:5]}")
        self.tokenizer = tokenizer or basic_english
        self.default_index: int | None = None
        if default_index is not None:
            self.set_default_index(default_index)

    @classmethod
    def from_texts(
        cls,
        texts: Iterable[str],
        tokenizer: Callable[[str], list[str]] | None = None,
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = ("<pad>", "<unk>"),
        unk_token: str | None = "<unk>",
    ) -> Vocab:
        """The vocabulary of ``texts`` (the training split): ``specials`` first, then the
        words seen at least ``min_freq`` times, most frequent first (ties in alphabetical
        order), ``max_size`` entries in all (specials included). Unknown words map to
        ``unk_token`` (which must be one of the specials), or raise if it is None."""
        tokenizer = tokenizer or basic_english
        vocab = build_vocab_from_iterator(
            (tokenizer(t) for t in texts), min_freq, list(specials), True, max_size
        )
        vocab.tokenizer = tokenizer
        if unk_token is not None:
            if unk_token not in vocab.stoi:
                raise ValueError(f"Vocab: unk_token {unk_token!r} is not among specials {specials}")
            vocab.set_default_index(vocab.stoi[unk_token])
        return vocab

    # ----------------------------------------------------------------- torchtext's API
    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __getitem__(self, token: str) -> int:
        index = self.stoi.get(token, self.default_index)
        if index is None:
            raise KeyError(
                f"Vocab: token {token!r} is not in the vocabulary and no default index is set"
            )
        return index

    def __call__(self, tokens: Iterable[str]) -> list[int]:
        return self.lookup_indices(tokens)

    def set_default_index(self, index: int | None) -> None:
        """The id of every token not in the vocabulary (None: such a token raises)."""
        if index is not None and not 0 <= index < len(self):
            raise IndexError(f"Vocab: default index {index} is outside 0..{len(self) - 1}")
        self.default_index = index

    def get_default_index(self) -> int | None:
        return self.default_index

    def lookup_indices(self, tokens: Iterable[str]) -> list[int]:
        return [self[t] for t in tokens]

    def lookup_tokens(self, indices: Iterable[int]) -> list[str]:
        out = []
        for i in indices:
            if not 0 <= int(i) < len(self):
                raise IndexError(f"Vocab: id {int(i)} is outside 0..{len(self) - 1}")
            out.append(self.itos[int(i)])
        return out

    def get_itos(self) -> list[str]:
        return list(self.itos)

    def get_stoi(self) -> dict[str, int]:
        return dict(self.stoi)

    # ----------------------------------------------------------------- texts
    def encode(self, text: str) -> np.ndarray:
        """A text -> (L,) int64 ids of its tokens."""
        return np.array(self.lookup_indices(self.tokenizer(text)), dtype=np.int64)

    def decode(self, ids: Iterable[int] | np.ndarray, skip: Iterable[str] = ()) -> str:
        """Ids -> their tokens joined by spaces, leaving out the tokens in ``skip`` (e.g.
        ``("<pad>",)``)."""
        leave_out = set(skip)
        return " ".join(
            t for t in self.lookup_tokens(np.asarray(ids).ravel()) if t not in leave_out
        )

    def encode_batch(
        self, texts: Sequence[str], max_len: int | None = None, pad_token: str = "<pad>"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Texts -> ids (N, L) int64, each row padded with ``pad_token``'s id at the end
        (L is the longest text, or ``max_len``, which also cuts longer texts), and the
        lengths (N,) int64 before padding (after cutting), e.g. for
        ``nn.utils.rnn.pack_padded_sequence``."""
        if pad_token not in self.stoi:
            raise ValueError(
                f"Vocab.encode_batch: pad_token {pad_token!r} is not in the vocabulary"
            )
        rows = [self.encode(t) for t in texts]
        if max_len is not None:
            if max_len < 1:
                raise ValueError(f"Vocab.encode_batch: max_len must be >= 1, got {max_len}")
            rows = [r[:max_len] for r in rows]
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        width = max_len if max_len is not None else int(lengths.max(initial=0))
        out = np.full((len(rows), width), self.stoi[pad_token], dtype=np.int64)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out, lengths


def build_vocab_from_iterator(
    iterator: Iterable[Iterable[str]],
    min_freq: int = 1,
    specials: list[str] | None = None,
    special_first: bool = True,
    max_tokens: int | None = None,
) -> Vocab:
    """torchtext's function: count the tokens of every token list in ``iterator``; keep
    those seen at least ``min_freq`` times, ordered by count (descending), ties in
    alphabetical order; ``specials`` first (or last), ``max_tokens`` entries in all."""
    if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
        raise ValueError(f"build_vocab: min_freq must be an int >= 1, got {min_freq!r}")
    specials = list(specials or [])
    if max_tokens is not None and max_tokens <= len(specials):
        raise ValueError(
            f"build_vocab: max_tokens={max_tokens} leaves no room beside {len(specials)} specials"
        )
    counts: Counter[str] = Counter()
    for tokens in iterator:
        counts.update(tokens)
    for s in specials:
        counts.pop(s, None)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    words = [w for w, n in ordered if n >= min_freq]
    if max_tokens is not None:
        words = words[: max_tokens - len(specials)]
    return Vocab(specials + words if special_first else words + specials)
