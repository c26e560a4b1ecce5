"""Language-model scores: a mean cross-entropy in nats as perplexity and as bits per
character, and two measures of generated text (real-word share, repeated n-gram rate).

A model's mean negative log-likelihood per token, L (nats, what ``F.cross_entropy``
returns), is the usual figure of merit; these say the same number in other units:

    perplexity = exp(L)            the number of equally likely choices it amounts to
    bits per character = L / ln 2  the code length per character an ideal coder would need

The text measures read generated text as words: lower-case runs of letters and apostrophes
(``words``). Sampling at a low temperature repeats itself (high repeated n-gram rate) in
words the model knows well (high real-word share); at a high temperature it invents words
(low share) and rarely repeats.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from .image import as_array

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def perplexity(nats: Any) -> Any:
    """exp(L) of a mean cross-entropy L in nats (a float, or an array / Tensor of them)."""
    return _float_or_array(np.exp(_nats(nats, "perplexity")))


def bits_per_character(nats: Any) -> Any:
    """L / ln 2 of a mean cross-entropy per character L in nats (float, array or Tensor):
    the same loss in bits."""
    return _float_or_array(_nats(nats, "bits_per_character") / math.log(2))


def _nats(nats: Any, name: str) -> np.ndarray:
    value = as_array(nats).astype(np.float64)
    if np.any(value < 0) or np.any(np.isnan(value)):
        raise ValueError(f"{name}: a cross-entropy in nats is >= 0, got {value}")
    return value


def _float_or_array(value: np.ndarray) -> Any:
    """A float for a scalar argument, else the array."""
    return float(value) if value.ndim == 0 else value


def words(text: str) -> list[str]:
    """The words of a text: lower-cased runs of letters with inner apostrophes
    ("Don't stop." -> ["don't", "stop"])."""
    return _WORD.findall(text.lower())


def real_word_share(text: str, vocabulary: Iterable[str]) -> float:
    """The share of the words of ``text`` (``words``) that are in ``vocabulary`` (e.g. the
    set of words of the training text); NaN for a text with no words."""
    found = words(text)
    if not found:
        return math.nan
    known = vocabulary if isinstance(vocabulary, (set, frozenset, dict)) else set(vocabulary)
    return sum(w in known for w in found) / len(found)


def repeated_ngram_rate(text: str, n: int = 3) -> float:
    """The share of the word n-grams of ``text`` that repeat an n-gram seen earlier in it:
    1 - distinct / total (0: no n-gram twice; near 1: a loop). NaN with fewer than n words."""
    if n < 1:
        raise ValueError(f"repeated_ngram_rate: n must be >= 1, got {n}")
    tokens = words(text)
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return math.nan
    return 1.0 - len(set(grams)) / len(grams)
