"""What the character-level language models (char_lstm, char_transformer) share and is not
their lesson: the texts and their train/validation split, drawing a character at a
temperature, the measures of a sample, and the validation-curve axes.

The split: the last ``VAL_FRACTION`` of a text is held out for validation (of each novel,
for Jane Austen, so that every novel is in both parts); the model trains on the rest. A
contiguous tail, not random windows, so that no validation passage also appears, shifted,
in training. The character set is the whole text's: it is not learned, and a character
seen only in the held-out part (Austen's '£') still needs an id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minidl.data import CharVocab, load_janeausten, load_tinyshakespeare
from minidl.metrics import real_word_share, repeated_ngram_rate, words

CORPORA = ("tinyshakespeare", "janeausten")
DATA = ["text/tinyshakespeare.txt"] + [
    f"text/janeausten/{name}"
    for name in (
        "sensesensibility.txt",
        "prideprejudice.txt",
        "mansfieldpark.txt",
        "emma.txt",
        "northangerabbey.txt",
        "persuasion.txt",
    )
]
VAL_FRACTION = 0.1
PROMPTS = {"tinyshakespeare": "ROMEO:\n", "janeausten": "Elizabeth"}
NGRAM = 3  # the repeated n-gram rate counts word trigrams


@dataclass
class Corpus:
    """A text split for training: ids of the training and validation parts (int64 (L,)),
    its character vocabulary and the set of words of the training part (what a generated
    word is checked against)."""

    name: str
    vocab: CharVocab
    train: np.ndarray
    val: np.ndarray
    train_words: set[str]
    val_text: str


def load_corpus(name: str, max_chars: int | None = None) -> Corpus:
    """tinyshakespeare (1,115,394 characters) or janeausten (six novels, 4,025,028),
    split train / validation (see the module docstring); ``max_chars`` keeps only the first
    characters of each text (quick runs)."""
    if name == "tinyshakespeare":
        pieces = [load_tinyshakespeare()]
    elif name == "janeausten":
        pieces = list(load_janeausten().values())
    else:
        raise ValueError(f"load_corpus: unknown corpus {name!r}; have {CORPORA}")
    pieces = [p[:max_chars] for p in pieces]
    cuts = [len(p) - int(len(p) * VAL_FRACTION) for p in pieces]
    train = "".join(p[:c] for p, c in zip(pieces, cuts, strict=True))
    val = "".join(p[c:] for p, c in zip(pieces, cuts, strict=True))
    vocab = CharVocab.from_text(train + val)
    return Corpus(name, vocab, vocab.encode(train), vocab.encode(val), set(words(train)), val)


def next_char(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """Draw an id from softmax(logits / temperature) (logits (V,)). Temperature 0 is the
    argmax; below 1 the distribution sharpens towards it, above 1 it flattens."""
    if temperature < 0:
        raise ValueError(f"next_char: temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    return int(rng.choice(len(p), p=p / p.sum()))


def sample_measures(text: str, corpus: Corpus) -> dict[str, float]:
    """The measures of a generated text: the share of its words that are words of the
    training text, and the share of its word trigrams that repeat an earlier one."""
    return {
        "words": len(words(text)),
        "real_word_share": real_word_share(text, corpus.train_words),
        f"repeated_{NGRAM}gram_rate": repeated_ngram_rate(text, NGRAM),
    }


def reference_measures(corpus: Corpus, chars: int) -> dict[str, float]:
    """The same measures on ``chars`` characters of the held-out text: what real text of
    the sample's length scores."""
    return sample_measures(corpus.val_text[:chars], corpus)


def add_point(curve: dict[str, list[float]], step: int, running: list[float], val: float) -> None:
    """One point of a learning curve: the step, the mean training loss over the steps since
    the last point (``running``) and the validation loss, all in nats per character."""
    curve["step"].append(step)
    curve["train_nats"].append(float(np.mean(running)))
    curve["val_nats"].append(val)


def label_loss_axes(ax: object, xlabel: str = "training step") -> None:
    """Validation-loss axes: nats on the left, the same scale in bits per character on
    the right (bpc = nats / ln 2)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss (nats per character)")
    right = ax.secondary_yaxis(
        "right", functions=(lambda n: n / np.log(2), lambda b: b * np.log(2))
    )
    right.set_ylabel("bits per character")
