"""imdb_lstm: the quick run on the real reviews, the vocabulary from the training split
only, the token rows, and packing that gives each review's own final state."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minidl as md
from minidl.data import data_root, get_tokenizer
from projects import _text, imdb_lstm
from projects.runner import RunContext, run_project

HAVE_REVIEWS = (data_root() / imdb_lstm.DATA[0]).is_file()
needs_reviews = pytest.mark.skipif(not HAVE_REVIEWS, reason="polarity reviews not in MINIDL_DATA")


@needs_reviews
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("imdb_lstm", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    names = ["padded", "packed", "tfidf_logreg"]
    assert set(report["figures"]) == {
        *(f"confusion_{n}.png" for n in names),
        "learning_curves.png",
        "precision_recall.png",
    }
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
    results = report["results"]
    assert results["sizes"] == {"train": 84, "val": 12, "test": 24}
    for name in names:
        test = results["models"][name]["test"]
        matrix = np.array(test["confusion_matrix"])
        assert matrix.sum() == 24 and (matrix.sum(axis=1) == 12).all()  # stratified
        assert np.trace(matrix) / 24 == pytest.approx(test["accuracy"])
        tp, fp = matrix[1, 1], matrix[0, 1]
        assert test["precision"] == pytest.approx(tp / max(tp + fp, 1))
        assert test["recall"] == pytest.approx(tp / 12)
        assert 0 <= test["roc_auc"] <= 1
    # The quick cap (60 tokens) cuts every review: no row has padding, so packing changes
    # nothing and both LSTMs (same seed) give the same numbers.
    assert results["share_of_train_reviews_cut"] == 1.0
    assert results["models"]["padded"]["test"] == results["models"]["packed"]["test"]


@needs_reviews
def test_vocabulary_comes_from_the_training_split_only():
    splits = _text.load_reviews(RunContext("imdb_lstm", data_root(), quick=True), n_quick=120)
    vocab = imdb_lstm.build_vocab(splits["train"][0])
    tokenize = get_tokenizer("basic_english")
    train_words = {w for text in splits["train"][0] for w in tokenize(text)}
    other_words = {w for s in ("val", "test") for text in splits[s][0] for w in tokenize(text)}
    assert set(vocab.get_itos()[2:]) <= train_words
    unseen = sorted(other_words - train_words)
    assert unseen and all(vocab[w] == vocab["<unk>"] for w in unseen)
    # The splits are disjoint reviews.
    texts = [set(splits[s][0]) for s in ("train", "val", "test")]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])


def test_token_rows_keep_the_last_tokens_padded_before_or_after():
    from minidl.data import Vocab

    vocab = Vocab.from_texts(["a b c d e"])
    ids = {w: vocab[w] for w in "abcde"}
    pre, lengths = _text.token_ids(vocab, ["a b c d e", "b c"], cap=3)
    np.testing.assert_array_equal(pre, [[ids["c"], ids["d"], ids["e"]], [0, ids["b"], ids["c"]]])
    np.testing.assert_array_equal(lengths, [3, 2])
    post, _ = _text.token_ids(vocab, ["b c"], cap=3, padding="post")
    np.testing.assert_array_equal(post, [[ids["b"], ids["c"], 0]])


def test_packed_model_gives_each_review_its_own_final_state():
    """A short review in a packed batch scores as it does alone; pre-padding it instead
    (same weights) changes its score, if only a little."""
    md.manual_seed(0)
    padded = imdb_lstm.ReviewLSTM(50, packed=False).eval()
    packed = imdb_lstm.ReviewLSTM(50, packed=True).eval()
    packed.load_state_dict(padded.state_dict())
    rng = np.random.default_rng(0)
    long, short = rng.integers(2, 50, 12), rng.integers(2, 50, 4)
    post = np.zeros((2, 12), np.int64)
    post[0], post[1, :4] = long, short
    pre = np.zeros((2, 12), np.int64)
    pre[0], pre[1, 8:] = long, short
    with md.no_grad():
        together = packed(md.tensor(post)).numpy()
        alone = packed(md.tensor(short[None])).numpy()
        with_padding = padded(md.tensor(pre)).numpy()
    np.testing.assert_allclose(together[1], alone[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(together[0], with_padding[0], rtol=1e-5, atol=1e-6)
    assert abs(with_padding[1] - alone[0]) > 1e-6
