"""char_transformer: the quick run on the real text; the attention is causal; the size is
char_lstm's; training lowers the loss; sampling runs past the window."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeds

import minidl as md
from minidl.data import CharVocab, data_root
from minidl.metrics import words
from projects import _chars
from projects.char_lstm import CharLSTM
from projects.char_transformer import (
    CONTEXT,
    CharTransformer,
    comparison_figure,
    evaluate,
    sample,
    train,
)
from projects.runner import RunContext, run_project

TEXT = "It is a truth universally acknowledged, that a single man in possession " * 40


@pytest.mark.skipif(
    not (Path(data_root()) / "text/tinyshakespeare.txt").is_file(),
    reason="tinyshakespeare is not under MINIDL_DATA",
)
def test_quick_run_writes_metrics_and_figure(tmp_path):
    run_project("char_transformer", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["figures"] == ["validation_curves.png"]
    assert (tmp_path / "validation_curves.png").stat().st_size > 1000
    result = report["results"]
    assert result["val_bpc"] == pytest.approx(result["val_nats"] / math.log(2))
    assert result["val_nats"] < math.log(result["vocab"])
    for t in ("T=0.2", "T=1.0", "T=1.5"):
        assert result["samples"][t]["text"].startswith(_chars.PROMPTS["tinyshakespeare"])


@given(seeds, st.integers(1, 20))
def test_a_position_sees_no_later_character(seed, t):
    """Changing the characters after position t leaves the logits up to t unchanged."""
    md.manual_seed(seed)
    model = CharTransformer(11).eval()
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 11, (2, 24))
    changed = ids.copy()
    changed[:, t + 1 :] = rng.integers(0, 11, changed[:, t + 1 :].shape)
    with md.no_grad():
        a, b = model(md.tensor(ids)).numpy(), model(md.tensor(changed)).numpy()
    np.testing.assert_allclose(a[:, : t + 1], b[:, : t + 1], rtol=1e-5, atol=1e-6)


def test_about_char_lstms_size():
    ours = sum(p.numel() for p in CharTransformer(65).parameters())
    lstm = sum(p.numel() for p in CharLSTM(65).parameters())
    assert abs(ours - lstm) / lstm < 0.1
    with pytest.raises(ValueError, match="at most 128"):
        CharTransformer(5)(md.tensor(np.zeros((1, CONTEXT + 1), dtype=np.int64)))


def _corpus() -> _chars.Corpus:
    vocab = CharVocab.from_text(TEXT)
    ids, cut = vocab.encode(TEXT), int(len(TEXT) * 0.9)
    return _chars.Corpus("toy", vocab, ids[:cut], ids[cut:], set(words(TEXT)), TEXT[cut:])


def test_training_lowers_the_loss_and_sampling_reads_past_the_window():
    md.manual_seed(0)
    corpus = _corpus()
    model = CharTransformer(len(corpus.vocab))
    before = evaluate(model, corpus.val)
    curve = train(model, corpus, steps=6, eval_every=3, ctx=RunContext("t", Path("."), quiet=True))
    assert curve["step"] == [3, 6] and curve["val_nats"][-1] < before
    text = sample(model, corpus, "It is", CONTEXT + 10, 0.0, np.random.default_rng(0))
    assert len(text) == 5 + CONTEXT + 10 and text.startswith("It is")


def test_the_comparison_figure_with_and_without_the_lstm(tmp_path):
    curve = {"step": [1, 2], "train_nats": [3.0, 2.5], "val_nats": [2.9, 2.6]}
    comparison_figure(curve, None, tmp_path / "a.png")
    comparison_figure(curve, {"curve": curve}, tmp_path / "b.png")
    assert (tmp_path / "a.png").stat().st_size > 1000 and (tmp_path / "b.png").is_file()
