"""Review sentiment on word2vec vectors: RNN, LSTM, GRU and bidirectional LSTM, with the
vectors frozen or fine-tuned, each repeated over several seeds.

Data: the movie-review polarity set v2.0 (2,000 reviews), split 70/10/20 into train /
validation / test, stratified. gensim's Word2Vec (CBOW, ``W2V`` below) is trained on the
tokenised training reviews only; its vectors fill an ``nn.Embedding.from_pretrained``
table over the training vocabulary (``<pad>`` and ``<unk>`` rows zero), either frozen
(``freeze=True``: only the recurrent layer and the head learn) or fine-tuned with the rest.

Each model reads the last ``CAP`` tokens of a review (pre-padded), runs one recurrent layer
of ``HIDDEN`` units, and a Linear layer turns the final hidden state (the bidirectional
LSTM: both directions' final states side by side) into a logit; binary cross-entropy, Adam,
gradient clipping, early stopping on the validation loss.

With 2,000 reviews one run is noisy, so each of the 8 configurations (4 cells x 2
embeddings) runs for ``SEEDS`` seeds; a seed draws the split, word2vec's initialisation,
the model's initialisation and the batch order. The report gives mean and standard
deviation over seeds of test precision, recall and F1, the parameter counts, the training
time per epoch, and which differences in F1 exceed the spread (|mean difference| larger
than the sum of the two standard deviations). It ends with the nearest neighbours of a few
words in the first seed's vectors: what word2vec learned from 1,400 reviews.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset, Vocab, get_tokenizer
from minidl.nn import functional as F
from minidl.train import EarlyStopping, fit, predict
from projects import _text
from projects.runner import RunContext

DESCRIPTION = "review sentiment on word2vec: RNN/LSTM/GRU/BiLSTM, frozen vs fine-tuned, seeds"
DATA = ["imdb-polarity/movie_reviews.zip"]
SEEDS = 3  # full run; each seed re-draws the split, the word vectors and the models
# CBOW: on these 1M training tokens it is ~4x faster than skip-gram and the neighbours below
# are already sensible; 100 dimensions, 5 words each side, 10 passes, words seen twice.
W2V = {"vector_size": 100, "window": 5, "epochs": 10, "min_count": 2, "sg": 0}
CELLS = ["rnn", "lstm", "gru", "bilstm"]
EMBEDDINGS = ["frozen", "fine_tuned"]
CAP = 100  # tokens per review: 24 runs share a few CPU-minutes (imdb_lstm reads 400)
MAX_VOCAB = 10_000
HIDDEN = 64
EPOCHS = 4
PATIENCE = 2
BATCH = 32
LR = 2e-3
CLIP = 1.0
PROBES = ["good", "bad", "excellent", "boring", "funny", "scary", "actor", "plot"]


# --------------------------------------------------------------------------- data
def word_vectors(train_texts: list[str], seed: int) -> Any:
    """gensim Word2Vec (settings ``W2V``) trained on the tokenised training reviews; its
    ``wv`` (KeyedVectors). One worker thread, so that a seed fixes the vectors."""
    from gensim.models import Word2Vec

    tokenize = get_tokenizer("basic_english")
    sentences = [tokenize(t) for t in train_texts]
    return Word2Vec(sentences, workers=1, seed=seed, **W2V).wv


def embedding_table(vocab: Vocab, vectors: Any) -> tuple[np.ndarray, int]:
    """(table (len(vocab), D) float32, how many vocabulary words have a vector): row i is
    the word2vec vector of vocab word i, zero for the specials and any word without one."""
    table = np.zeros((len(vocab), vectors.vector_size), dtype=np.float32)
    found = 0
    for i, word in enumerate(vocab.get_itos()):
        if word in vectors.key_to_index:
            table[i] = vectors[word]
            found += 1
    return table, found


# --------------------------------------------------------------------------- model
class ReviewRNN(nn.Module):
    """ids (N, L) int64 -> logits (N,): Embedding (word2vec table, D) -> one recurrent
    layer of HIDDEN units -> the final hidden state (N, HIDDEN; bidirectional: both
    directions', N, 2 HIDDEN) -> Linear -> (N,)."""

    def __init__(self, cell: str, table: np.ndarray, freeze: bool) -> None:
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(md.tensor(table), freeze=freeze)
        layer = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU, "bilstm": nn.LSTM}[cell]
        self.rnn = layer(table.shape[1], HIDDEN, batch_first=True, bidirectional=cell == "bilstm")
        self.head = nn.Linear(HIDDEN * self.rnn.num_directions, 1)

    def forward(self, ids: md.Tensor) -> md.Tensor:
        _, state = self.rnn(self.embedding(ids))
        h_n = state[0] if isinstance(state, tuple) else state  # LSTM: (h_n, c_n)
        final = md.cat([h_n[k] for k in range(h_n.shape[0])], dim=1)  # both directions
        return self.head(final).squeeze(1)


def parameter_counts(model: nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}


# --------------------------------------------------------------------------- training
def train_and_score(
    ctx: RunContext,
    cell: str,
    embedding: str,
    table: np.ndarray,
    data: dict[str, tuple[np.ndarray, np.ndarray]],
    seed: int,
) -> dict[str, Any]:
    """Train one configuration with one seed; its test report, parameters and timings."""
    md.manual_seed(seed)
    model = ReviewRNN(cell, table, freeze=embedding == "frozen")
    train = DataLoader(TensorDataset(*data["train"]), BATCH, shuffle=True, generator=seed)
    epochs = ctx.epochs_or(EPOCHS, 1)
    history = fit(
        model,
        loss_fn=F.binary_cross_entropy_with_logits,
        optimizer=optim.Adam([p for p in model.parameters() if p.requires_grad], lr=LR),
        train_loader=train,
        epochs=epochs,
        val_loader=DataLoader(TensorDataset(*data["val"]), 256),
        metrics=["accuracy"],
        clip_grad_norm=CLIP,
        callbacks=[
            EarlyStopping("val_loss", patience=PATIENCE),
            ctx.epoch_log(f"seed {seed} {cell}/{embedding}", epochs),
        ],
        progress=False,
    )
    logits, _ = predict(model, DataLoader(TensorDataset(*data["test"]), 256))
    report = _text.binary_report(1 / (1 + np.exp(-logits.astype(np.float64))), data["test"][1])
    times = history.series("time")
    return {
        **report,
        "parameters": parameter_counts(model),
        "seconds_per_epoch": float(np.mean(times)),
        "epochs_run": len(times),
        "best_epoch": int(np.argmin(history.series("val_loss"))) + 1,
        "val_accuracy": history.series("val_accuracy"),
    }


def one_seed(ctx: RunContext, seed: int) -> tuple[dict[str, dict[str, Any]], Any, dict]:
    """Every configuration on the split, vectors and initialisation of one seed."""
    splits = _text.load_reviews(ctx, n_quick=120, seed=seed)
    tokenize = get_tokenizer("basic_english")
    vocab = Vocab.from_texts(
        splits["train"][0], tokenize, min_freq=W2V["min_count"], max_size=MAX_VOCAB
    )
    start = time.perf_counter()
    vectors = word_vectors(splits["train"][0], seed)
    w2v_seconds = time.perf_counter() - start
    table, found = embedding_table(vocab, vectors)
    cap = ctx.subset(CAP, 40)
    data = {n: (_text.token_ids(vocab, t, cap)[0], y) for n, (t, y) in splits.items()}
    results = {}
    for cell, embedding in itertools.product(CELLS, EMBEDDINGS):
        result = train_and_score(ctx, cell, embedding, table, data, seed)
        results[f"{cell}/{embedding}"] = result
        ctx.log(f"seed {seed} {cell}/{embedding}: test {_text.summary_row(result)}")
    info = {
        "sizes": {n: len(y) for n, (_, y) in splits.items()},
        "vocab_size": len(vocab),
        "words_with_vectors": found,
        "word2vec_seconds": round(w2v_seconds, 1),
    }
    return results, vectors, info


# --------------------------------------------------------------------------- report
def mean_std(runs: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation (ddof=1; 0 for one run) of each key over the seeds."""
    out = {}
    for key in keys:
        values = np.array([r[key] for r in runs], dtype=np.float64)
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[key] = {"mean": float(values.mean()), "std": std}
    return out


def clear_differences(summary: dict[str, Any], metric: str = "f1") -> list[str]:
    """Pairs of configurations whose mean ``metric`` differs by more than the sum of their
    standard deviations, as "a > b (difference)"."""
    out = []
    for a, b in itertools.combinations(summary, 2):
        ma, mb = summary[a][metric]["mean"], summary[b][metric]["mean"]
        spread = summary[a][metric]["std"] + summary[b][metric]["std"]
        if abs(ma - mb) > spread:
            hi, lo = (a, b) if ma > mb else (b, a)
            out.append(f"{hi} > {lo} ({abs(ma - mb):.3f} > {spread:.3f})")
    return out


def neighbours(vectors: Any) -> dict[str, list[list[Any]]]:
    """The five nearest words (cosine similarity) of each probe word that has a vector."""
    return {
        w: [[n, round(float(s), 3)] for n, s in vectors.most_similar(w, topn=5)]
        for w in PROBES
        if w in vectors.key_to_index
    }


# --------------------------------------------------------------------------- run
def run(ctx: RunContext) -> None:
    seeds = [ctx.seed + k for k in range(ctx.subset(SEEDS, 1))]
    runs: dict[str, list[dict[str, Any]]] = {}
    infos = {}
    first = _text.load_reviews(ctx, n_quick=120, seed=seeds[0])  # every seed: same sizes
    ctx.data(**{name: len(y) for name, (_, y) in first.items()})
    for seed in seeds:
        results, vectors, info = one_seed(ctx, seed)
        if seed == seeds[0]:
            ctx.record(
                neighbours=neighbours(vectors),
                word2vec=W2V,
                settings={"cap": ctx.subset(CAP, 40), "hidden": HIDDEN, "lr": LR, "batch": BATCH},
            )
            for word, near in neighbours(vectors).items():
                ctx.log(f"near '{word}': {', '.join(n for n, _ in near)}")
        infos[str(seed)] = info
        for name, result in results.items():
            runs.setdefault(name, []).append(result)
    keys = ("precision", "recall", "f1", "accuracy", "roc_auc", "seconds_per_epoch")
    summary = {name: mean_std(r, keys) for name, r in runs.items()}
    for name, stats in summary.items():
        stats["parameters"] = runs[name][0]["parameters"]
        f1 = stats["f1"]
        ctx.log(f"{name}: F1 {f1['mean']:.3f} +- {f1['std']:.3f} over {len(seeds)} seeds")
    # One seed has no spread to compare against: no difference is claimed from it.
    differences = clear_differences(summary) if len(seeds) > 1 else []
    ctx.log("F1 differences beyond the spread: " + ("; ".join(differences) or "none"))
    ctx.record(seeds=seeds, per_seed=infos, summary=summary, runs=runs, f1_differences=differences)
    summary_figure(summary, len(seeds), ctx.figure("f1_and_time"))


def summary_figure(summary: dict[str, Any], n_seeds: int, path: Any) -> None:
    """Two panels: test F1 and seconds per epoch of each cell, frozen and fine-tuned side
    by side, mean with the standard deviation over seeds as error bars."""
    from minidl.viz.plots import place_legend, pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    x = np.arange(len(CELLS))
    for ax, key, label in zip(
        axes, ("f1", "seconds_per_epoch"), ("test F1", "training seconds per epoch")
    ):
        for k, embedding in enumerate(EMBEDDINGS):
            stats = [summary[f"{c}/{embedding}"][key] for c in CELLS]
            ax.bar(
                x + (k - 0.5) * 0.38, [s["mean"] for s in stats], 0.38,
                yerr=[s["std"] for s in stats], capsize=3, label=embedding, color=f"C{k}",
            )  # fmt: skip
        ax.set_xticks(x, CELLS)
        ax.set(xlabel="recurrent cell", ylabel=label)
        ax.grid(alpha=0.3, axis="y")
        place_legend(ax)
    fig.suptitle(f"word2vec embeddings, mean and std over {n_seeds} seed(s)")
    save_figure(fig, path)
