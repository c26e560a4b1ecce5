import hashlib

import numpy as np
import pytest

from minidl.data import CharVocab, DataCorruptError, load_text, load_tinyshakespeare
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
