"""imdb_word2vec_rnns: the quick run on the real reviews, the embedding table built from
the word vectors, the four cells' read-outs, and the spread rule for claimed differences."""

from __future__ import annotations

import json

import numpy as np
import pytest

import minidl as md
from minidl.data import Vocab, data_root
from projects import imdb_word2vec_rnns as w2v
from projects.runner import run_project

pytest.importorskip("gensim")
HAVE_REVIEWS = (data_root() / w2v.DATA[0]).is_file()


@pytest.mark.skipif(not HAVE_REVIEWS, reason="polarity reviews not in MINIDL_DATA")
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("imdb_word2vec_rnns", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["figures"] == ["f1_and_time.png"]
    assert (tmp_path / "f1_and_time.png").stat().st_size > 1000
    results = report["results"]
    assert results["sizes"] == {"train": 84, "val": 12, "test": 24}
    assert set(results["summary"]) == {f"{c}/{e}" for c in w2v.CELLS for e in w2v.EMBEDDINGS}
    for name, stats in results["summary"].items():
        params = stats["parameters"]
        table = results["per_seed"]["0"]["vocab_size"] * w2v.W2V["vector_size"]
        # Frozen: the table is a buffer-like constant; fine-tuned: it trains too.
        expected = params["total"] - table if name.endswith("frozen") else params["total"]
        assert params["trainable"] == expected
        assert stats["f1"]["std"] == 0.0  # one seed in a quick run
    assert results["f1_differences"] == []  # nothing is claimed from one seed
    assert results["neighbours"]  # probe words with their nearest words


def test_embedding_table_rows_follow_the_vocabulary():
    from gensim.models import KeyedVectors

    vectors = KeyedVectors(3)
    vectors.add_vectors(["good", "film"], np.array([np.ones(3), np.arange(3.0)]))
    vocab = Vocab(["<pad>", "<unk>", "film", "good", "rare"])
    table, found = w2v.embedding_table(vocab, vectors)
    assert found == 2 and table.dtype == np.float32
    np.testing.assert_array_equal(table, [[0] * 3, [0] * 3, [0, 1, 2], [1] * 3, [0] * 3])


@pytest.mark.parametrize("cell", w2v.CELLS)
def test_each_cell_reads_its_final_state(cell):
    md.manual_seed(0)
    table = np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)
    model = w2v.ReviewRNN(cell, table, freeze=True)
    ids = md.tensor(np.random.default_rng(1).integers(0, 20, (3, 7)))
    assert model(ids).shape == (3,)
    assert model.head.in_features == (2 if cell == "bilstm" else 1) * w2v.HIDDEN
    assert not model.embedding.weight.requires_grad


def test_differences_are_claimed_only_beyond_the_spread():
    summary = {
        "a": {"f1": {"mean": 0.80, "std": 0.01}},
        "b": {"f1": {"mean": 0.75, "std": 0.02}},  # 0.05 > 0.03: a clear difference
        "c": {"f1": {"mean": 0.78, "std": 0.05}},  # within the spread of both
    }
    assert w2v.clear_differences(summary) == ["a > b (0.050 > 0.030)"]
