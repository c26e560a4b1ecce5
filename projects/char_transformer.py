"""A small decoder-only Transformer on the same characters as char_lstm: does attention over
a fixed window beat a recurrent state at the same size and cost?

The model (GPT's layout, pre-norm): ids (N, T) -> token embedding + learned position
embedding (N, T, D) -> LAYERS blocks of [LayerNorm -> causal multi-head self-attention ->
add; LayerNorm -> Linear(D, 4D) -> GELU -> Linear(4D, D) -> add] -> LayerNorm ->
Linear(D, V) logits (N, T, V). The attention is ``nn.MultiheadAttention`` with a causal mask:
position t attends to positions <= t of its window only, so all T next-character
predictions of a window train at once.

Same split and measures as char_lstm (projects/_chars.py): the last 10% of tinyshakespeare
held out, validation loss in nats and bits per character, samples at temperatures 0.2, 1.0
and 1.5 from the same prompt with the real-word share and repeated-trigram rate. About
char_lstm's parameter count (116,673 against 108,225 for 65 characters) and CPU time: the
same number of steps, BATCH chosen so that a step costs what an LSTM step costs. One
difference is built in: the LSTM carries its state across windows, so its validation loss
uses all the text before each character; the Transformer sees at most CONTEXT characters,
and a character at window position t only its t predecessors.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import BPTTBatches
from minidl.metrics import bits_per_character, perplexity
from minidl.nn import functional as F
from minidl.viz import pyplot, save_figure
from projects import _chars
from projects.runner import RunContext

DESCRIPTION = "decoder-only Transformer on tinyshakespeare characters, against char_lstm"
DATA = _chars.DATA[:1]
CORPUS = "tinyshakespeare"
D_MODEL = 64
HEADS = 4
LAYERS = 2
CONTEXT = 128  # characters a prediction can look back on (learned positions 0..127)
BATCH = 16  # windows per step: a step then costs what a char_lstm step costs
LR = 1e-3  # Adam; a Transformer of this size diverges in its first steps at 2e-3
CLIP = 1.0
STEPS = 2000  # char_lstm's steps: 0.068 s of CPU a step for both models, measured
EVAL_EVERY = 100
EVAL_BATCH = 128
TEMPERATURES = (0.2, 1.0, 1.5)
SAMPLE_CHARS = 2000
LSTM_RUN = Path("runs/char_lstm/metrics.json")  # char_lstm's full run, for the comparison


# --------------------------------------------------------------------------- model
class Block(nn.Module):
    """x (N, T, D) -> x + attention(LN(x)) -> that + MLP(LN(that)), causal."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: md.Tensor, mask: md.Tensor) -> md.Tensor:
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False, is_causal=True)[0]
        return x + self.mlp(self.ln2(x))


class CharTransformer(nn.Module):
    """ids (N, T <= context) int64 -> logits (N, T, V); logits[:, t] predicts character
    t + 1 from characters 0..t of the window."""

    def __init__(self, vocab: int, d: int = D_MODEL, heads: int = HEADS, layers: int = LAYERS):
        super().__init__()
        self.vocab = vocab
        self.tokens = nn.Embedding(vocab, d)
        self.positions = nn.Embedding(CONTEXT, d)
        # GPT's N(0, 0.02) embeddings: PyTorch's N(0, 1) default would outweigh the
        # residual updates of the blocks at the start
        for embedding in (self.tokens, self.positions):
            nn.init.normal_(embedding.weight, std=0.02)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids: md.Tensor) -> md.Tensor:
        length = ids.shape[1]
        if length > CONTEXT:
            raise ValueError(f"CharTransformer: windows of at most {CONTEXT}, got {ids.shape}")
        x = self.tokens(ids) + self.positions(md.arange(length))
        mask = nn.Transformer.generate_square_subsequent_mask(length)  # -inf above diagonal
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.ln(x))


# --------------------------------------------------------------------------- training
def train(
    model: CharTransformer, corpus: _chars.Corpus, steps: int, eval_every: int, ctx: RunContext
) -> dict[str, list[float]]:
    """Adam over windows of CONTEXT characters from BATCH contiguous streams (the same
    stream batching as char_lstm, with no state to carry); every ``eval_every`` steps the
    mean training loss since the last point and the validation loss (nats)."""
    optimizer = optim.Adam(model.parameters(), lr=LR)
    batches = BPTTBatches(corpus.train, BATCH, CONTEXT, drop_last=True)
    curve: dict[str, list[float]] = {"step": [], "train_nats": [], "val_nats": []}
    running = []
    model.train()
    for step in range(1, steps + 1):
        x, y = batches[(step - 1) % len(batches)]
        logits = model(md.tensor(x))
        loss = F.cross_entropy(logits.reshape(-1, model.vocab), md.tensor(y).reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        running.append(loss.item())
        if step % eval_every == 0 or step == steps:
            val = evaluate(model, corpus.val)
            model.train()
            _chars.add_point(curve, step, running, val)
            running = []
            ctx.log(
                f"step {step}/{steps} train {curve['train_nats'][-1]:.3f} "
                f"val {val:.3f} nats ({bits_per_character(val):.3f} bpc)"
            )
    return curve


def evaluate(model: CharTransformer, ids: np.ndarray) -> float:
    """Mean cross-entropy (nats per character) over the whole of ``ids``, read in windows
    of CONTEXT characters (each character predicted from its window's earlier ones)."""
    model.eval()
    total, count = 0.0, 0
    with md.no_grad():
        for x, y in BPTTBatches(ids, min(EVAL_BATCH, len(ids) // (CONTEXT + 1)), CONTEXT):
            logits = model(md.tensor(x))
            loss = F.cross_entropy(
                logits.reshape(-1, model.vocab), md.tensor(y).reshape(-1), reduction="sum"
            )
            total, count = total + loss.item(), count + y.size
    return total / count


def sample(
    model: CharTransformer,
    corpus: _chars.Corpus,
    prompt: str,
    length: int,
    temperature: float,
    rng: np.random.Generator,
) -> str:
    """The prompt and ``length`` characters drawn one at a time, each from the logits of
    the last position given the last CONTEXT characters (no state: the window is re-read)."""
    model.eval()
    ids = list(corpus.vocab.encode(prompt))
    with md.no_grad():
        for _ in range(length):
            logits = model(md.tensor([ids[-CONTEXT:]]))
            ids.append(_chars.next_char(logits[0, -1].numpy(), temperature, rng))
    return corpus.vocab.decode(ids)


# --------------------------------------------------------------------------- run
def run(ctx: RunContext) -> None:
    corpus = _chars.load_corpus(CORPUS, max_chars=20_000 if ctx.quick else None)
    ctx.data(CORPUS, train=len(corpus.train), val=len(corpus.val))
    steps = ctx.epochs_or(STEPS, 8)  # --epochs N: N steps (the loop counts steps)
    every = max(1, steps // 2) if ctx.quick else EVAL_EVERY
    model = CharTransformer(len(corpus.vocab))
    start, cpu = time.perf_counter(), time.process_time()
    curve = train(model, corpus, steps, every, ctx)
    train_time, train_cpu = time.perf_counter() - start, time.process_time() - cpu
    final = curve["val_nats"][-1]
    length = 200 if ctx.quick else SAMPLE_CHARS
    samples: dict[str, Any] = {
        "prompt": _chars.PROMPTS[CORPUS],
        "validation_text": _chars.reference_measures(corpus, length),
    }
    for t in TEMPERATURES:
        text = sample(
            model, corpus, _chars.PROMPTS[CORPUS], length, t, np.random.default_rng(ctx.seed)
        )
        samples[f"T={t}"] = {"text": text, **_chars.sample_measures(text, corpus)}
    lstm = None if ctx.quick else lstm_result()  # a quick run has no full run to meet
    ctx.record(
        settings={
            "d_model": D_MODEL,
            "heads": HEADS,
            "layers": LAYERS,
            "context": CONTEXT,
            "batch": BATCH,
            "lr": LR,
            "clip": CLIP,
            "val_fraction": _chars.VAL_FRACTION,
        },
        vocab=len(corpus.vocab),
        parameters=sum(p.numel() for p in model.parameters()),
        steps=steps,
        train_time_s=round(train_time, 1),
        train_cpu_s=round(train_cpu, 1),
        curve=curve,
        val_nats=final,
        val_bpc=bits_per_character(final),
        val_perplexity=perplexity(final),
        samples=samples,
        char_lstm=None
        if lstm is None
        else {k: lstm[k] for k in ("val_nats", "val_bpc", "parameters", "train_time_s", "steps")},
    )
    comparison_figure(curve, lstm, ctx.figure("validation_curves"))


def lstm_result() -> dict[str, Any] | None:
    """char_lstm's tinyshakespeare result from its full run (None if it has not run)."""
    if not LSTM_RUN.is_file():
        return None
    return json.loads(LSTM_RUN.read_text())["results"]["corpora"][CORPUS]


def comparison_figure(
    curve: dict[str, list[float]], lstm: dict[str, Any] | None, path: Any
) -> None:
    """Validation (and training) loss against step of the Transformer and of char_lstm
    (equal steps cost equal CPU time), nats left, bits per character right."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    ax.plot(curve["step"], curve["val_nats"], "o-", ms=3, label="Transformer validation")
    ax.plot(curve["step"], curve["train_nats"], ":", color="C0", label="Transformer training")
    if lstm is not None:
        c = lstm["curve"]
        ax.plot(c["step"], c["val_nats"], "s-", ms=3, color="C1", label="LSTM validation")
        ax.plot(c["step"], c["train_nats"], ":", color="C1", label="LSTM training")
    ax.set_title(f"{CORPUS}: Transformer against char_lstm")
    _chars.label_loss_axes(ax)
    ax.legend()
    save_figure(fig, path)
