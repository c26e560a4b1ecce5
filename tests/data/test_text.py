import hashlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minidl.data import (
    BPTTBatches,
    CharVocab,
    DataCorruptError,
    DataNotFoundError,
    load_janeausten,
    load_text,
    load_tinyshakespeare,
)
from minidl.data import text as text_module


def test_vocab_is_sorted_and_round_trips():
    text = "hello, wörld! ☃\nhello"
    vocab = CharVocab.from_text(text)
    assert vocab.chars == sorted(set(text)) and len(vocab) == len(set(text))
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (len(text),)
    assert [vocab.chars[i] for i in ids] == list(text)
    assert vocab.decode(ids) == text and vocab.decode(ids.tolist()[:5]) == "hello"


def test_unknown_character_and_bad_ids():
    vocab = CharVocab("abc")
    with pytest.raises(KeyError, match="'z' at position 2"):
        vocab.encode("abz")
    with pytest.raises(IndexError, match=r"0\.\.2"):
        vocab.decode([0, 3])


def test_load_text_rejects_non_utf8(tmp_path):
    (tmp_path / "ok.txt").write_text("First Citizen:\n", encoding="utf-8")
    assert load_text(tmp_path / "ok.txt") == "First Citizen:\n"
    (tmp_path / "bad.txt").write_bytes(b"abc\xff")
    with pytest.raises(DataCorruptError, match=r"bad\.txt: not UTF-8 at byte 3"):
        load_text(tmp_path / "bad.txt")


def test_tinyshakespeare_is_checked(tmp_path, monkeypatch):
    (tmp_path / "text").mkdir()
    body = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"
    (tmp_path / "text" / "tinyshakespeare.txt").write_bytes(body)
    with pytest.raises(DataCorruptError, match=text_module.TINYSHAKESPEARE_SHA256):
        load_tinyshakespeare(root=tmp_path)
    monkeypatch.setattr(text_module, "TINYSHAKESPEARE_SHA256", hashlib.sha256(body).hexdigest())
    assert load_tinyshakespeare(root=tmp_path) == body.decode()


def test_bptt_batches_carry_each_row_on_from_the_last_batch():
    ids = np.arange(103)  # token t is the number t, so every position is visible
    batches = BPTTBatches(ids, batch_size=4, bptt=5)
    # (103 - 1) // 4 = 25 tokens per stream: row i is 25 i .. 25 i + 24
    assert len(batches) == 5 and batches.tokens == 100
    previous = None
    for x, y in batches:
        assert x.shape == y.shape == (4, 5) and x.dtype == np.int64
        np.testing.assert_array_equal(y, x + 1)  # the target is the next token
        if previous is not None:
            # batch b's row i starts where row i of batch b-1 stopped
            np.testing.assert_array_equal(x[:, 0], previous[:, -1] + 1)
        previous = x
    rows = np.concatenate([x for x, _ in batches], axis=1)
    np.testing.assert_array_equal(rows, np.arange(100).reshape(4, 25))


def test_bptt_batches_last_window_and_drop_last():
    batches = BPTTBatches(np.arange(23), batch_size=2, bptt=4)  # streams of 11
    assert [x.shape[1] for x, _ in batches] == [4, 4, 3] and batches.tokens == 22
    dropped = BPTTBatches(np.arange(23), batch_size=2, bptt=4, drop_last=True)
    assert [x.shape[1] for x, _ in dropped] == [4, 4] and dropped.tokens == 16
    np.testing.assert_array_equal(batches[-1][1], [[9, 10, 11], [20, 21, 22]])
    with pytest.raises(IndexError, match="batch 3 of 3"):
        batches[3]


@given(st.integers(2, 300), st.integers(1, 6), st.integers(1, 9))
def test_bptt_batches_serve_every_pair_once(length, batch_size, bptt):
    ids = np.arange(length)
    if (length - 1) // batch_size < 1:
        with pytest.raises(ValueError, match="BPTTBatches"):
            BPTTBatches(ids, batch_size, bptt)
        return
    batches = BPTTBatches(ids, batch_size, bptt)
    xs = np.concatenate([x.ravel() for x, _ in batches])
    assert len(np.unique(xs)) == len(xs) == batches.tokens
    assert batches.tokens == batch_size * ((length - 1) // batch_size)


def test_bptt_batches_refuse_bad_input():
    with pytest.raises(ValueError, match=r"\(L,\) integers"):
        BPTTBatches(np.zeros((2, 3), dtype=np.int64), 1, 1)
    with pytest.raises(ValueError, match="must be >= 1"):
        BPTTBatches(np.arange(10), 0, 3)
    with pytest.raises(ValueError, match="need at least 4"):
        BPTTBatches(np.arange(10), 3, 4, drop_last=True)


def test_janeausten_needs_every_novel(tmp_path):
    (tmp_path / "text" / "janeausten").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match=r"sensesensibility\.txt does not exist"):
        load_janeausten(root=tmp_path)
    for name in text_module.JANEAUSTEN:
        (tmp_path / "text" / "janeausten" / name).write_text("Chapter 1\n", encoding="utf-8")
    with pytest.raises(DataCorruptError, match="sha256"):
        load_janeausten(root=tmp_path)
