"""char_lstm: the quick run on the real texts; the state carried between stream batches
continues the text; cold sampling is the argmax; the PyTorch twin follows minidl."""

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
from minidl.data import BPTTBatches, CharVocab, data_root
from minidl.metrics import words
from projects import _chars
from projects.char_lstm import CharLSTM, evaluate, torch_twin, train
from projects.runner import RunContext, run_project

TEXT = "It is a truth universally acknowledged, that a single man in possession " * 120


def small_corpus() -> _chars.Corpus:
    vocab = CharVocab.from_text(TEXT)
    cut = int(len(TEXT) * 0.9)
    ids = vocab.encode(TEXT)
    return _chars.Corpus("toy", vocab, ids[:cut], ids[cut:], set(words(TEXT)), TEXT[cut:])


@pytest.mark.skipif(
    not all((Path(data_root()) / f).is_file() for f in _chars.DATA),
    reason="tinyshakespeare and the Austen novels are not under MINIDL_DATA",
)
def test_quick_run_writes_metrics_and_figure(tmp_path):
    run_project("char_lstm", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["figures"] == ["validation_curves.png"]
    assert (tmp_path / "validation_curves.png").stat().st_size > 1000
    for name in _chars.CORPORA:
        result = report["results"]["corpora"][name]
        assert result["val_bpc"] == pytest.approx(result["val_nats"] / math.log(2))
        assert result["val_nats"] < math.log(result["vocab"])  # better than a uniform guess
        for t in ("T=0.2", "T=1.0", "T=1.5"):
            sample = result["samples"][t]
            assert sample["text"].startswith(_chars.PROMPTS[name])
            assert 0 <= sample["real_word_share"] <= 1
    twin = report["results"]["corpora"]["tinyshakespeare"].get("torch")
    try:
        import torch  # noqa: F401
    except ImportError:
        assert twin is None
    else:
        assert abs(twin["gap_nats"]) < 1e-3


def test_the_carried_state_continues_each_row():
    """Two consecutive stream batches with the state carried give the logits of one call
    over both windows: batch b's row i continues row i of batch b-1."""
    md.manual_seed(0)
    ids = np.random.default_rng(0).integers(0, 7, 200)
    batches = BPTTBatches(ids, batch_size=3, bptt=8)
    model = CharLSTM(7, hidden=5)
    with md.no_grad():
        first, state = model(md.tensor(batches[0][0]))
        second, _ = model(md.tensor(batches[1][0]), state)
        both, _ = model(md.tensor(np.concatenate([batches[0][0], batches[1][0]], axis=1)))
    np.testing.assert_allclose(second.numpy(), both.numpy()[:, 8:], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(first.numpy(), both.numpy()[:, :8], rtol=1e-5, atol=1e-6)


@given(seeds, st.integers(2, 80))
def test_cold_sampling_is_the_argmax(seed, vocab):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(vocab) * 3
    best = int(np.argmax(logits))
    assert _chars.next_char(logits, 0.0, rng) == best
    assert _chars.next_char(logits, 1e-4, rng) == best  # the limit T -> 0


def test_sampling_at_temperature_one_follows_the_softmax():
    rng = np.random.default_rng(0)
    logits = np.log(np.array([0.7, 0.2, 0.1]))
    draws = np.bincount([_chars.next_char(logits, 1.0, rng) for _ in range(4000)], minlength=3)
    np.testing.assert_allclose(draws / 4000, [0.7, 0.2, 0.1], atol=0.03)
    with pytest.raises(ValueError, match="temperature"):
        _chars.next_char(logits, -1.0, rng)


def test_training_lowers_the_validation_loss():
    md.manual_seed(0)
    corpus = small_corpus()
    model = CharLSTM(len(corpus.vocab), hidden=32)
    before = evaluate(model, corpus.val)
    curve = train(model, corpus, steps=4, eval_every=2, ctx=RunContext("t", Path("."), quiet=True))
    assert curve["step"] == [2, 4] and curve["val_nats"][-1] < before


def test_the_pytorch_twin_follows_minidl_from_the_same_weights():
    pytest.importorskip("torch")
    md.manual_seed(0)
    corpus = small_corpus()
    model = CharLSTM(len(corpus.vocab))
    initial = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    ctx = RunContext("t", Path("."), quiet=True)
    ours = train(model, corpus, steps=6, eval_every=3, ctx=ctx)
    theirs = torch_twin(initial, corpus, steps=6, eval_every=3)
    np.testing.assert_allclose(ours["train_nats"], theirs["train_nats"], rtol=1e-4)
    np.testing.assert_allclose(ours["val_nats"], theirs["val_nats"], rtol=1e-4)
