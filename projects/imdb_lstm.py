"""Movie-review sentiment with an LSTM: Embedding -> LSTM(128) -> Linear(1), trained with
binary cross-entropy on logits, against a TF-IDF + logistic-regression baseline.

Data: the movie-review polarity set v2.0 (2,000 full-text IMDB reviews, half positive),
split 70/10/20 into train / validation / test, stratified. Tokenised with torchtext's
``basic_english``; the vocabulary comes from the training split only (a word seen only in
validation or test reviews maps to ``<unk>``): the 10,000 most frequent words seen at
least twice. Dropout on the word vectors: without it the LSTM fits the 1,400 training
reviews within three epochs while its validation loss climbs.

The reviews are long (median 714 tokens) and the LSTM is stepped once per token, so each
review keeps its last ``CAP`` tokens (where the verdict mostly is). Two ways to batch them:

- padded: every row padded to ``CAP`` with ``<pad>`` in front (Keras's ``pad_sequences``
  default), the LSTM steps over the padding too, and its last hidden state is read;
- packed: the same tokens, packed (``pack_padded_sequence``) so that the LSTM never
  steps on padding and each review's final state is the one after its own last word.

Both LSTMs train with Adam and gradient clipping, early stopping on the validation loss
(best epoch's weights kept). The baseline is scikit-learn's TF-IDF over word unigrams and
bigrams with logistic regression, its C chosen on the same validation split. On 1,400
training reviews the linear model is usually the stronger: an LSTM must learn its word
vectors from those few reviews. The test report gives accuracy, precision, recall, F1,
ROC AUC and the confusion matrix at threshold 0.5, precision and recall at other
thresholds, and the precision-recall curves: a higher threshold buys precision (fewer
negative reviews called positive) with recall (more positive reviews missed).
"""

from __future__ import annotations

import time

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset, Vocab, get_tokenizer
from minidl.nn import functional as F
from minidl.nn.utils.rnn import pack_padded_sequence
from minidl.train import EarlyStopping, fit, predict
from minidl.viz import confusion_matrix
from projects import _text, _vision
from projects.runner import RunContext

DESCRIPTION = "review sentiment (polarity v2.0): LSTM padded vs packed, TF-IDF baseline"
DATA = ["imdb-polarity/movie_reviews.zip"]
CAP = 400  # tokens kept per review: 93% of reviews are longer, so most rows are full
MIN_FREQ = 2  # a word seen once in training is <unk>: 60% of the types, little signal
MAX_VOCAB = 10_000  # the most frequent words (specials included): fewer vectors to learn
EMBED = 32
DROPOUT = 0.5  # on the word vectors: the LSTM overfits 1,400 reviews within 3 epochs without
HIDDEN = 128
EPOCHS = 12
PATIENCE = 3
BATCH = 32
LR = 1e-3
CLIP = 1.0  # the total gradient norm: long sequences give the occasional spike
THRESHOLDS = (0.3, 0.5, 0.7)
TFIDF_C = (0.3, 1.0, 3.0, 10.0, 30.0)


# --------------------------------------------------------------------------- data
def build_vocab(train_texts: list[str]) -> Vocab:
    """The vocabulary of the training reviews only: <pad> = 0, <unk> = 1, then the words
    seen at least MIN_FREQ times, most frequent first, MAX_VOCAB entries at most."""
    return Vocab.from_texts(
        train_texts, get_tokenizer("basic_english"), min_freq=MIN_FREQ, max_size=MAX_VOCAB
    )


def encode(
    vocab: Vocab, splits: dict[str, tuple[list[str], np.ndarray]], cap: int, padding: str
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each split as (ids (N, cap) int64, labels (N,) float32)."""
    return {
        name: (_text.token_ids(vocab, texts, cap, padding)[0], y)
        for name, (texts, y) in splits.items()
    }


# --------------------------------------------------------------------------- model
class ReviewLSTM(nn.Module):
    """ids (N, L) int64 -> logits (N,): Embedding(V, EMBED, padding_idx=0) -> Dropout ->
    LSTM(EMBED, HIDDEN) -> the final hidden state (N, HIDDEN) -> Linear(HIDDEN, 1).

    packed=True: the rows are padded at the end; each row's length (its non-pad ids) packs
    it, so the final state is taken after the review's own last token."""

    def __init__(self, vocab_size: int, packed: bool) -> None:
        super().__init__()
        self.packed = packed
        self.embedding = nn.Embedding(vocab_size, EMBED, padding_idx=0)
        self.dropout = nn.Dropout(DROPOUT)
        self.lstm = nn.LSTM(EMBED, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, 1)

    def forward(self, ids: md.Tensor) -> md.Tensor:
        x = self.dropout(self.embedding(ids))  # (N, L, EMBED)
        if self.packed:
            lengths = (ids.numpy() != 0).sum(axis=1)
            x = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.lstm(x)  # h_n: (1, N, HIDDEN)
        return self.head(h_n[-1]).squeeze(1)


# --------------------------------------------------------------------------- training
def train_lstm(
    ctx: RunContext, name: str, data: dict[str, tuple[np.ndarray, np.ndarray]], vocab_size: int
) -> tuple[ReviewLSTM, object, float]:
    """Train one LSTM; returns (model at its best validation loss, history, seconds)."""
    md.manual_seed(ctx.seed)
    model = ReviewLSTM(vocab_size, packed=name == "packed")
    train = DataLoader(TensorDataset(*data["train"]), BATCH, shuffle=True, generator=ctx.seed)
    val = DataLoader(TensorDataset(*data["val"]), 256)
    epochs = ctx.epochs_or(EPOCHS, 1)
    start = time.perf_counter()
    history = fit(
        model,
        loss_fn=F.binary_cross_entropy_with_logits,
        optimizer=optim.Adam(model.parameters(), lr=LR),
        train_loader=train,
        epochs=epochs,
        val_loader=val,
        metrics=["accuracy"],
        clip_grad_norm=CLIP,
        callbacks=[EarlyStopping("val_loss", patience=PATIENCE), ctx.epoch_log(name, epochs)],
        progress=False,
    )
    return model, history, time.perf_counter() - start


def probabilities(model: nn.Module, ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """P(positive) (N,) of each review."""
    logits, _ = predict(model, DataLoader(TensorDataset(ids, labels), 256))
    return 1 / (1 + np.exp(-logits.astype(np.float64)))


def tfidf_baseline(
    splits: dict[str, tuple[list[str], np.ndarray]],
) -> tuple[np.ndarray, dict[str, float]]:
    """TF-IDF (unigrams and bigrams, seen in >= 2 training reviews, sublinear tf) fitted on
    the training reviews, logistic regression with the C of best validation accuracy.
    Returns (test P(positive) (N,), {"C": ..., "val_accuracy": ...})."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(
        tokenizer=get_tokenizer("basic_english"),
        token_pattern=None,
        lowercase=False,  # basic_english lower-cases
        ngram_range=(1, 2),
        min_df=2,
        sublinear_tf=True,
    )
    vectorizer.fit(splits["train"][0])  # the vocabulary and IDF of the training reviews
    x = {name: vectorizer.transform(texts) for name, (texts, _) in splits.items()}
    y = {name: labels.astype(np.int64) for name, (_, labels) in splits.items()}
    fitted = {
        c: LogisticRegression(C=c, max_iter=2000).fit(x["train"], y["train"]) for c in TFIDF_C
    }
    scores = {c: m.score(x["val"], y["val"]) for c, m in fitted.items()}
    best = max(TFIDF_C, key=lambda c: (scores[c], -c))  # ties: the stronger regularisation
    return fitted[best].predict_proba(x["test"])[:, 1], {
        "C": best,
        "val_accuracy": scores[best],
        "features": len(vectorizer.vocabulary_),
    }


# --------------------------------------------------------------------------- run
def run(ctx: RunContext) -> None:
    splits = _text.load_reviews(ctx, n_quick=120)
    ctx.data(**{name: len(y) for name, (_, y) in splits.items()})
    vocab = build_vocab(splits["train"][0])
    cap = ctx.subset(CAP, 60)
    train_lengths = _text.token_ids(vocab, splits["train"][0], cap)[1]
    ctx.log(f"vocabulary {len(vocab):,} words; {np.mean(train_lengths == cap):.0%} reviews cut")
    ctx.record(
        vocab_size=len(vocab),
        cap=cap,
        share_of_train_reviews_cut=float(np.mean(train_lengths == cap)),
        settings=dict(
            embed=EMBED,
            dropout=DROPOUT,
            hidden=HIDDEN,
            batch=BATCH,
            lr=LR,
            clip=CLIP,
            max_vocab=MAX_VOCAB,
            min_freq=MIN_FREQ,
        ),
    )

    test_y = splits["test"][1]
    scores, models, histories = {}, {}, {}
    for name, padding in (("padded", "pre"), ("packed", "post")):
        data = encode(vocab, splits, cap, padding)
        model, history, seconds = train_lstm(ctx, name, data, len(vocab))
        histories[name] = history
        scores[name] = probabilities(model, *data["test"])
        models[name] = {
            "parameters": _vision.parameter_count(model),
            "epochs_run": len(history.epochs),
            "best_epoch": int(np.argmin(history.series("val_loss"))) + 1,
            "train_time_s": round(seconds, 1),
            "seconds_per_epoch": round(seconds / len(history.epochs), 2),
            "curves": _vision.history_record(history),
        }
    start = time.perf_counter()
    scores["tfidf_logreg"], chosen = tfidf_baseline(splits)
    models["tfidf_logreg"] = {**chosen, "train_time_s": round(time.perf_counter() - start, 1)}

    for name, p in scores.items():
        report = _text.binary_report(p, test_y)
        models[name]["test"] = report
        models[name]["at_thresholds"] = {
            str(t): {k: _text.binary_report(p, test_y, t)[k] for k in ("precision", "recall")}
            for t in THRESHOLDS
        }
        ctx.log(f"{name} test: {_text.summary_row(report)}")
        confusion_matrix(
            np.array(report["confusion_matrix"]),
            ["neg", "pos"],
            ctx.figure(f"confusion_{name}"),
            title=f"{name}: test confusion (threshold 0.5)",
        )
    ctx.record(models=models)
    _vision.compare_curves(
        histories, ctx.figure("learning_curves"), "LSTM on polarity reviews: padded vs packed"
    )
    _text.precision_recall_figure(
        {name: (p, test_y) for name, p in scores.items()},
        ctx.figure("precision_recall"),
        "test precision-recall (dots: threshold 0.5)",
    )
