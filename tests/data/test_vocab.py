"""The word-level vocabulary and tokenizer: torchtext's rules (basic_english, frequency
order with alphabetical ties, specials first, min_freq, max_tokens), unknown words, and
round trips through encode / decode."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidl.data import Vocab, basic_english, build_vocab_from_iterator, get_tokenizer

TRAIN = [
    "The film was great, really great!",
    "A dull film. The plot (if any) was dull.",
    "Great acting; great music: I'd watch it again?",
]


def test_basic_english_follows_torchtexts_rules():
    assert basic_english('He said "Hi!" (twice); ok: fine.<br />Bye, I\'m off?') == [
        "he", "said", "hi", "!", "(", "twice", ")", "ok", "fine", ".", "bye", ",",
        "i", "'", "m", "off", "?",
    ]  # fmt: skip
    assert get_tokenizer("basic_english") is basic_english
    assert get_tokenizer(None)("a  b\tc") == ["a", "b", "c"]
    with pytest.raises(ValueError, match="unknown tokenizer"):
        get_tokenizer("spacy")


def test_vocab_order_specials_min_freq_and_max_size():
    vocab = Vocab.from_texts(TRAIN, min_freq=2)
    counts = {"great": 4, "the": 2, "film": 2, "was": 2, "dull": 2, ".": 2}
    assert vocab.get_itos() == ["<pad>", "<unk>", "great", ".", "dull", "film", "the", "was"]
    assert all(w in vocab for w in counts) and "plot" not in vocab
    small = Vocab.from_texts(TRAIN, max_size=4)
    assert small.get_itos() == ["<pad>", "<unk>", "great", "."]
    assert small["plot"] == small["<unk>"] == 1


def test_unknown_words_map_to_unk_and_padding_is_zero():
    vocab = Vocab.from_texts(TRAIN)
    ids = vocab.encode("The GREAT unseenword!")
    assert ids.dtype == np.int64 and ids.tolist() == [vocab["the"], vocab["great"], 1, vocab["!"]]
    batch, lengths = vocab.encode_batch(["great film", "a", "the plot was dull dull dull"], 4)
    assert batch.shape == (3, 4) and lengths.tolist() == [2, 1, 4]
    assert (
        batch[1, 1:].tolist() == [0, 0, 0]
        and batch[2].tolist() == vocab.encode("the plot was dull").tolist()
    )
    assert vocab.decode(batch[0], skip=["<pad>"]) == "great film"


def test_without_unk_an_unknown_word_raises_naming_it():
    vocab = Vocab.from_texts(TRAIN, specials=("<pad>",), unk_token=None)
    with pytest.raises(KeyError, match="'zebra' is not in the vocabulary"):
        vocab.encode("zebra")
    with pytest.raises(ValueError, match="unk_token"):
        Vocab.from_texts(TRAIN, specials=("<pad>",))
    with pytest.raises(IndexError, match="id 99"):
        vocab.decode([99])


def test_build_vocab_from_iterator_is_torchtexts():
    vocab = build_vocab_from_iterator([["b", "a", "c", "a"], ["c", "d"]], specials=["<s>"])
    assert vocab.get_itos() == ["<s>", "a", "c", "b", "d"]
    last = build_vocab_from_iterator([["x", "y", "y"]], specials=["<unk>"], special_first=False)
    assert last.get_itos() == ["y", "x", "<unk>"]
    assert vocab(["a", "d"]) == [1, 4] and vocab.lookup_tokens([2, 0]) == ["c", "<s>"]
    with pytest.raises(ValueError, match="min_freq"):
        build_vocab_from_iterator([["a"]], min_freq=0)
    with pytest.raises(ValueError, match="max_tokens"):
        build_vocab_from_iterator([["a"]], specials=["<pad>"], max_tokens=1)


words = st.text(alphabet="abcdefgh", min_size=1, max_size=5)


@given(st.lists(st.lists(words, min_size=1, max_size=8), min_size=1, max_size=6))
def test_encode_decode_round_trip_on_training_words(sentences):
    texts = [" ".join(s) for s in sentences]
    vocab = Vocab.from_texts(texts)
    for text in texts:
        assert vocab.decode(vocab.encode(text)) == text  # every training word is kept
    assert len(set(vocab.get_itos())) == len(vocab)
