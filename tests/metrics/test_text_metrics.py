"""minidl.metrics.text: bits per character and perplexity are the loss in other units; the
measures of generated text on texts built to have a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl as md
from minidl.metrics import (
    bits_per_character,
    perplexity,
    real_word_share,
    repeated_ngram_rate,
    words,
)


@given(st.floats(0.0, 20.0))
def test_bits_per_character_is_nats_over_ln2_and_perplexity_is_exp(nats):
    assert bits_per_character(nats) == pytest.approx(nats / math.log(2))
    assert perplexity(nats) == pytest.approx(math.exp(nats))
    # 2 ** bpc is the perplexity too: the same number in base 2
    assert 2 ** bits_per_character(nats) == pytest.approx(perplexity(nats))


def test_a_uniform_guess_over_v_characters():
    nats = math.log(65)  # the loss of a uniform guess over 65 characters
    assert perplexity(nats) == pytest.approx(65)
    assert bits_per_character(nats) == pytest.approx(math.log2(65))
    assert bits_per_character(math.log(2)) == pytest.approx(1.0)


def test_arrays_and_tensors_are_taken_elementwise():
    curve = np.array([4.0, 2.0, 1.5])
    np.testing.assert_allclose(bits_per_character(curve), curve / np.log(2))
    np.testing.assert_allclose(perplexity(md.tensor(curve)), np.exp(curve))
    assert isinstance(bits_per_character(md.tensor(1.0)), float)


def test_a_negative_loss_is_refused():
    with pytest.raises(ValueError, match="bits_per_character"):
        bits_per_character(-0.1)


def test_words_lower_case_letters_and_inner_apostrophes():
    assert words("Don't stop, ROMEO!  o'er the 3 hills--'tis") == [
        "don't",
        "stop",
        "romeo",
        "o'er",
        "the",
        "hills",
        "tis",
    ]


def test_real_word_share_counts_each_occurrence():
    vocabulary = set(words("the cat sat on the mat"))
    assert real_word_share("The cat sat", vocabulary) == 1.0
    assert real_word_share("the zat sot on", vocabulary) == 0.5
    assert real_word_share("the the the qq", vocabulary) == 0.75  # occurrences, not types
    assert math.isnan(real_word_share("... 42 !", vocabulary))


def test_repeated_ngram_rate_of_a_loop_and_of_fresh_text():
    assert repeated_ngram_rate("a b c d e f g", n=3) == 0.0  # 5 trigrams, all new
    # "a b a b a b": trigrams aba, bab, aba, bab -> 2 distinct of 4
    assert repeated_ngram_rate("a b a b a b", n=3) == 0.5
    loop = " ".join(["and the king said"] * 50)
    assert repeated_ngram_rate(loop, n=3) > 0.95
    assert repeated_ngram_rate("a a a a", n=1) == 0.75
    assert math.isnan(repeated_ngram_rate("two words", n=3))
    with pytest.raises(ValueError, match="n must be"):
        repeated_ngram_rate("a b", n=0)
