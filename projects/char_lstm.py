"""A character-level LSTM that writes like its training text, and the same model trained in
PyTorch beside it: minidl's end-to-end check on a recurrent model.

The model reads one character at a time (one-hot, as the reference) and predicts the next:
one-hot (V) -> LSTM(128) -> Linear(128, V) logits. It is trained as the classic char-rnn:
the training text is cut into BATCH contiguous streams; each step takes the next BPTT
characters of every stream, starts the LSTM from the state where the previous step left
it (detached: the gradient flows back BPTT steps only, truncated backpropagation through
time), and clips the gradient norm to CLIP. Validation loss on the held-out tail of each
text (projects/_chars.py: the last 10%) is reported in nats and in bits per character.

Samples from one prompt at temperatures 0.2, 1.0 and 1.5 show the trade the reference
describes: cold sampling is conservative (real words, but loops), hot sampling creative
(fresh, but invented words). Two measures put numbers on it: the share of generated words
that are words of the training text, and the share of word trigrams that repeat.

With PyTorch installed, the tinyshakespeare model is trained a second time in PyTorch:
same data and batches, the initial weights copied from minidl's, the same Adam, clipping,
steps and seed; the two validation curves share one figure and the gap is recorded.
"""

from __future__ import annotations

import time
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

DESCRIPTION = "character LSTM(128) on tinyshakespeare and Jane Austen, beside PyTorch's twin"
DATA = _chars.DATA
HIDDEN = 128
BATCH = 64  # contiguous streams per step
BPTT = 100  # characters per step of each stream: how far back the gradient flows
LR = 2e-3  # Adam; char-rnn's learning rate
CLIP = 5.0  # max gradient norm
STEPS = 2000  # per text: 13 epochs of tinyshakespeare, 3.5 of the Austen novels
EVAL_EVERY = 100  # steps between validation passes
EVAL_BATCH = 256  # validation streams (no gradient, so wider batches are cheap)
TEMPERATURES = (0.2, 1.0, 1.5)
SAMPLE_CHARS = 2000  # generated per temperature (the measures); RESULTS.md shows the start
TWIN = "tinyshakespeare"  # the text the PyTorch twin trains on


# --------------------------------------------------------------------------- model
class CharLSTM(nn.Module):
    """ids (N, T) int64 -> one-hot (N, T, V) -> LSTM -> (N, T, H) -> logits (N, T, V).

    ``state`` is the LSTM's (h, c), each (1, N, H): the one returned by the previous call
    continues the same N streams (None: zeros)."""

    def __init__(self, vocab: int, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.vocab = vocab
        self.lstm = nn.LSTM(vocab, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, ids: md.Tensor, state: Any = None) -> tuple[md.Tensor, Any]:
        out, state = self.lstm(F.one_hot(ids, self.vocab).to(md.float32), state)
        return self.head(out), state


# --------------------------------------------------------------------------- training
def train(
    model: CharLSTM, corpus: _chars.Corpus, steps: int, eval_every: int, ctx: RunContext
) -> dict[str, list[float]]:
    """Truncated BPTT over the training streams for ``steps`` steps; every ``eval_every``
    steps (and at the end) the mean training loss since the last point and the validation
    loss are appended to the returned curve (nats)."""
    optimizer = optim.Adam(model.parameters(), lr=LR)
    batches = BPTTBatches(corpus.train, BATCH, BPTT, drop_last=True)
    curve: dict[str, list[float]] = {"step": [], "train_nats": [], "val_nats": []}
    state, running = None, []
    model.train()
    for step in range(1, steps + 1):
        b = (step - 1) % len(batches)
        if b == 0:
            state = None  # a new epoch: every stream starts again at its beginning
        x, y = batches[b]
        logits, state = model(md.tensor(x), state)
        state = tuple(s.detach() for s in state)  # keep the values, cut the graph
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
                f"{corpus.name} step {step}/{steps} train {curve['train_nats'][-1]:.3f} "
                f"val {val:.3f} nats ({bits_per_character(val):.3f} bpc)"
            )
    return curve


def evaluate(model: CharLSTM, ids: np.ndarray) -> float:
    """Mean cross-entropy (nats per character) over the whole of ``ids``, read as
    EVAL_BATCH streams with the state carried from window to window."""
    model.eval()
    total, count, state = 0.0, 0, None
    with md.no_grad():
        for x, y in BPTTBatches(ids, min(EVAL_BATCH, len(ids) // (BPTT + 1)), BPTT):
            logits, state = model(md.tensor(x), state)
            loss = F.cross_entropy(
                logits.reshape(-1, model.vocab), md.tensor(y).reshape(-1), reduction="sum"
            )
            total, count = total + loss.item(), count + y.size
    return total / count


def sample(
    model: CharLSTM,
    corpus: _chars.Corpus,
    prompt: str,
    length: int,
    temperature: float,
    rng: np.random.Generator,
) -> str:
    """The prompt and ``length`` characters drawn one at a time: the LSTM reads the prompt,
    then each drawn character is fed back with the state carried."""
    model.eval()
    drawn = []
    with md.no_grad():
        logits, state = model(md.tensor(corpus.vocab.encode(prompt)[None]))
        for _ in range(length):
            drawn.append(_chars.next_char(logits[0, -1].numpy(), temperature, rng))
            logits, state = model(md.tensor([[drawn[-1]]]), state)
    return prompt + corpus.vocab.decode(drawn)


# --------------------------------------------------------------------------- PyTorch twin
def torch_twin(
    initial: dict[str, np.ndarray], corpus: _chars.Corpus, steps: int, eval_every: int
) -> dict[str, list[float]] | None:
    """The same model and loop in PyTorch, from minidl's initial weights (``initial``, the
    state dict as arrays): the same batches, Adam, clipping and evaluation points. None
    without torch. PyTorch runs on one thread, as the runner's BLAS."""
    try:
        import torch
    except ImportError:
        return None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _torch_train(torch, initial, corpus, steps, eval_every)
    finally:
        torch.set_num_threads(threads)


def _torch_train(
    torch: Any, initial: dict[str, np.ndarray], corpus: _chars.Corpus, steps: int, every: int
) -> dict[str, list[float]]:
    tnn, tF = torch.nn, torch.nn.functional
    vocab = len(corpus.vocab)
    lstm, head = tnn.LSTM(vocab, HIDDEN, batch_first=True), tnn.Linear(HIDDEN, vocab)
    model = tnn.ModuleDict({"lstm": lstm, "head": head})
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in initial.items()})

    def forward(x: np.ndarray, state: Any) -> tuple[Any, Any]:
        one_hot = tF.one_hot(torch.from_numpy(x), vocab).float()
        out, state = lstm(one_hot, state)
        return head(out), state

    def evaluate_torch() -> float:
        total, count, state = 0.0, 0, None
        with torch.no_grad():
            streams = min(EVAL_BATCH, len(corpus.val) // (BPTT + 1))
            for x, y in BPTTBatches(corpus.val, streams, BPTT):
                logits, state = forward(x, state)
                target = torch.from_numpy(y).reshape(-1)
                total += tF.cross_entropy(logits.reshape(-1, vocab), target, reduction="sum")
                count += y.size
        return float(total) / count

    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    batches = BPTTBatches(corpus.train, BATCH, BPTT, drop_last=True)
    curve: dict[str, list[float]] = {"step": [], "train_nats": [], "val_nats": []}
    state, running = None, []
    for step in range(1, steps + 1):
        b = (step - 1) % len(batches)
        state = None if b == 0 else tuple(s.detach() for s in state)
        x, y = batches[b]
        logits, state = forward(x, state)
        loss = tF.cross_entropy(logits.reshape(-1, vocab), torch.from_numpy(y).reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        tnn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        running.append(loss.item())
        if step % every == 0 or step == steps:
            _chars.add_point(curve, step, running, evaluate_torch())
            running = []
    return curve


# --------------------------------------------------------------------------- run
def run_corpus(ctx: RunContext, name: str) -> dict[str, Any]:
    """Train, evaluate and sample on one text (and its PyTorch twin on TWIN)."""
    corpus = _chars.load_corpus(name, max_chars=20_000 if ctx.quick else None)
    ctx.data(name, train=len(corpus.train), val=len(corpus.val))
    steps = ctx.epochs_or(STEPS, 12)  # --epochs N: N steps (the loop counts steps)
    every = min(EVAL_EVERY, max(1, steps // 3)) if ctx.quick else EVAL_EVERY
    model = CharLSTM(len(corpus.vocab))
    initial = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    start = time.perf_counter()
    curve = train(model, corpus, steps, every, ctx)
    train_time = time.perf_counter() - start
    final = curve["val_nats"][-1]
    result: dict[str, Any] = {
        "vocab": len(corpus.vocab),
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": steps,
        "epochs": steps / len(BPTTBatches(corpus.train, BATCH, BPTT, drop_last=True)),
        "train_time_s": round(train_time, 1),
        "curve": curve,
        "val_nats": final,
        "val_bpc": bits_per_character(final),
        "val_perplexity": perplexity(final),
    }
    result["samples"] = samples(ctx, model, corpus)
    if name == TWIN:
        start = time.perf_counter()
        twin = torch_twin(initial, corpus, steps, every)
        if twin is not None:
            result["torch"] = {
                "curve": twin,
                "val_nats": twin["val_nats"][-1],
                "val_bpc": bits_per_character(twin["val_nats"][-1]),
                "train_time_s": round(time.perf_counter() - start, 1),
                "gap_nats": final - twin["val_nats"][-1],  # minidl minus PyTorch
            }
            ctx.log(f"PyTorch twin: val {twin['val_nats'][-1]:.4f} nats, minidl {final:.4f}")
    return result


def samples(ctx: RunContext, model: CharLSTM, corpus: _chars.Corpus) -> dict[str, Any]:
    """One sample per temperature from the corpus's prompt, with its measures, and the
    measures of held-out text of the same length for reference."""
    length = 300 if ctx.quick else SAMPLE_CHARS
    out: dict[str, Any] = {
        "prompt": _chars.PROMPTS[corpus.name],
        "validation_text": _chars.reference_measures(corpus, length),
    }
    for t in TEMPERATURES:
        rng = np.random.default_rng(ctx.seed)
        text = sample(model, corpus, _chars.PROMPTS[corpus.name], length, t, rng)
        out[f"T={t}"] = {"text": text, **_chars.sample_measures(text, corpus)}
    return out


def run(ctx: RunContext) -> None:
    results = {name: run_corpus(ctx, name) for name in _chars.CORPORA}
    ctx.record(
        corpora=results,
        settings={
            "hidden": HIDDEN,
            "batch": BATCH,
            "bptt": BPTT,
            "lr": LR,
            "clip": CLIP,
            "val_fraction": _chars.VAL_FRACTION,
        },
    )
    validation_figure(results, ctx.figure("validation_curves"))


def validation_figure(results: dict[str, Any], path: Any) -> None:
    """Validation loss against step for each text (nats left, bits per character right),
    minidl's and PyTorch's twin in one panel."""
    plt = pyplot()
    fig, axes = plt.subplots(
        1, len(results), figsize=(6.5 * len(results), 4.5), layout="constrained"
    )
    for ax, (name, result) in zip(np.atleast_1d(axes), results.items(), strict=True):
        curve = result["curve"]
        ax.plot(curve["step"], curve["val_nats"], "o-", ms=3, label="minidl validation")
        ax.plot(curve["step"], curve["train_nats"], ":", color="C0", label="minidl training")
        if "torch" in result:
            twin = result["torch"]["curve"]
            ax.plot(twin["step"], twin["val_nats"], "s--", ms=3, label="PyTorch validation")
            ax.plot(twin["step"], twin["train_nats"], ":", color="C1", label="PyTorch training")
        ax.set_title(f"{name}: LSTM({HIDDEN}), final val {result['val_nats']:.3f} nats")
        _chars.label_loss_axes(ax)
        ax.legend()
    save_figure(fig, path)
