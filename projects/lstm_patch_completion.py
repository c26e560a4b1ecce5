"""Completing the lower half of an MNIST digit with an LSTM that reads it patch by patch.

Each 28 x 28 image is cut into a 4 x 4 grid of 7 x 7 patches, read in raster order (left
to right, top to bottom): a sequence of 16 vectors of 49 pixels. The LSTM reads the upper
8 patches (the top two rows of the grid) and predicts the lower 8 one at a time; each
prediction is fed back as the next input, as text is generated word by word.

Training by teacher forcing feeds the true previous patch at every step and minimises the
MSE of the 8 lower predictions; one pass over the whole sequence does it. At test time the
model must read its own predictions, which it never saw in training (exposure bias).
Scheduled sampling (Bengio et al., 2015) bridges the two: in training each lower input is
the model's own previous prediction with a probability that rises linearly to ``SS_MAX``
over the epochs, and the true patch otherwise. Both are trained here with the same seed,
data and epochs, and measured free-running: does scheduled sampling help?

Reported: test MSE of the lower half (pixels in [0, 1]) for both, against two baselines
that need no training (the mean training image's lower half, and the lower half of the
training image whose upper half is nearest in L2), the MSE at each of the 8 lower patch
positions (how the error grows as predictions feed predictions), and the teacher-forced
test MSE (each step given the true previous patch) to show the gap the feedback opens.
Figure: upper half given, lower half predicted by each, the nearest neighbour, true image.
"""

from __future__ import annotations

import time

import numpy as np

import minidl as md
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset
from minidl.nn import functional as F
from projects import _generative as gen
from projects.runner import RunContext

DESCRIPTION = "MNIST: LSTM completes the lower half patch by patch (7x7 patches), vs baselines"
DATA = gen.FILES["mnist"]
GRID, SIZE = 4, 7  # a 4 x 4 grid of 7 x 7 patches
UPPER = 8  # patches given: the top two rows of the grid
HIDDEN = 256
EPOCHS = 3  # per model, two models: ~4 CPU-minutes in all (RESULTS.md)
BATCH = 128
LR = 2e-3
SS_MAX = 0.5  # scheduled sampling: the share of fed-back inputs reaches this at the end


def to_patches(images: np.ndarray) -> np.ndarray:
    """Images (N, 28, 28) or (N, 1, 28, 28) -> patches (N, 16, 49) in raster order: patch
    r * 4 + c holds rows 7r..7r+6 and columns 7c..7c+6, flattened row by row."""
    x = images.reshape(len(images), GRID, SIZE, GRID, SIZE)
    return x.transpose(0, 1, 3, 2, 4).reshape(len(images), GRID * GRID, SIZE * SIZE)


def from_patches(patches: np.ndarray) -> np.ndarray:
    """Patches (N, 16, 49) in raster order -> images (N, 28, 28); inverts ``to_patches``."""
    x = patches.reshape(len(patches), GRID, GRID, SIZE, SIZE)
    return x.transpose(0, 1, 3, 2, 4).reshape(len(patches), GRID * SIZE, GRID * SIZE)


def nearest_lower(train: np.ndarray, queries: np.ndarray, block: int = 1000) -> np.ndarray:
    """The nearest-neighbour baseline: for each query (M, 16, 49) whose upper 8 patches are
    known, the lower 8 patches of the training sequence (N, 16, 49) whose upper 8 are
    nearest in L2; (M, 8, 49). |a - b|^2 = |a|^2 - 2 a.b + |b|^2, a block of queries at a
    time (one matrix product each)."""
    known = train[:, :UPPER].reshape(len(train), -1)
    norms = (known**2).sum(axis=1)
    found = []
    for start in range(0, len(queries), block):
        q = queries[start : start + block, :UPPER].reshape(-1, known.shape[1])
        distances = norms[None, :] - 2 * q @ known.T  # |q|^2 is the same for every candidate
        found.append(train[distances.argmin(axis=1), UPPER:])
    return np.concatenate(found)


class PatchLSTM(nn.Module):
    """Patches (N, L, 49) -> the next patch after each (N, L, 49), pixels in [0, 1]:
    LSTM(49 -> 256), then Linear(256 -> 49) and a sigmoid on each step's output."""

    def __init__(self, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.lstm = nn.LSTM(SIZE * SIZE, hidden, batch_first=True)
        self.out = nn.Linear(hidden, SIZE * SIZE)

    def forward(self, patches: md.Tensor, state: tuple | None = None) -> tuple[md.Tensor, tuple]:
        """(predictions (N, L, 49), the LSTM's (h, c) after the last step)."""
        h, state = self.lstm(patches, state)
        return F.sigmoid(self.out(h)), state


def lower_predictions(
    model: PatchLSTM, seq: md.Tensor, feed_back: float, rng: np.random.Generator | None
) -> md.Tensor:
    """The 8 lower patches (N, 8, 49) predicted from sequences (N, 16, 49).

    The upper 8 are read in one pass; then each lower step's input is, per sequence, the
    model's own previous prediction with probability ``feed_back`` (detached: no gradient
    flows through a fed-back input, as in Bengio et al.) and the true previous patch
    otherwise. feed_back = 0 is teacher forcing (one pass over the whole sequence),
    feed_back = 1 is free-running generation."""
    if feed_back == 0:
        predicted, _ = model(seq[:, :-1])
        return predicted[:, UPPER - 1 :]
    predicted, state = model(seq[:, :UPPER])
    steps = [predicted[:, -1:]]
    for t in range(UPPER, GRID * GRID - 1):
        fed = steps[-1].detach()
        if feed_back < 1:
            mine = md.tensor(rng.random((len(seq), 1, 1)) < feed_back)
            fed = md.where(mine, fed, seq[:, t : t + 1])
        step, state = model(fed, state)
        steps.append(step)
    return md.cat(steps, dim=1)


def train_model(
    ctx: RunContext, name: str, train_seq: np.ndarray, epochs: int, scheduled: bool
) -> tuple[PatchLSTM, list[float]]:
    """A PatchLSTM trained on sequences (N, 16, 49) by teacher forcing, or with scheduled
    sampling (the fed-back share rising linearly to SS_MAX in the last epoch: SS_MAX / epochs
    in the first). Returns it and the training MSE of each epoch."""
    md.manual_seed(ctx.seed)  # both models start from the same weights, see the same batches
    model = PatchLSTM()
    train = DataLoader(TensorDataset(train_seq), batch_size=BATCH, shuffle=True, generator=ctx.seed)
    optimizer = optim.Adam(model.parameters(), lr=LR)
    rng = np.random.default_rng(ctx.seed)
    losses = []
    for epoch in range(1, epochs + 1):
        feed_back = SS_MAX * epoch / epochs if scheduled else 0.0
        total, seen = 0.0, 0
        for (xb,) in train:
            seq = md.tensor(xb)
            loss = F.mse_loss(lower_predictions(model, seq, feed_back, rng), seq[:, UPPER:])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
            seen += len(xb)
        losses.append(total / seen)
        ctx.epoch(name, epoch, epochs, train_mse=losses[-1], feed_back=feed_back)
    return model, losses


def predict_lower(model: PatchLSTM, seqs: np.ndarray, feed_back: float = 1.0) -> np.ndarray:
    """The lower 8 patches (N, 8, 49) of ``seqs`` (N, 16, 49) predicted without a graph:
    free-running (feed_back = 1) or teacher-forced (0)."""
    model.eval()
    with md.no_grad():
        out = [
            lower_predictions(model, md.tensor(seqs[i : i + 1000]), feed_back, None).numpy()
            for i in range(0, len(seqs), 1000)
        ]
    model.train()
    return np.concatenate(out)


def mse_by_position(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Mean squared error (8,) at each lower patch position, over sequences and pixels."""
    return ((predicted - true) ** 2).mean(axis=(0, 2))


def run(ctx: RunContext) -> None:
    # ------------------------------------------------------------------ data
    x_train, _, _ = gen.load_unit_images("mnist", "train", ctx.subset(60000, 1000))
    x_test, _, _ = gen.load_unit_images("mnist", "test", ctx.subset(10000, 200))
    train_seq, test_seq = to_patches(x_train), to_patches(x_test)  # (N, 16, 49)
    ctx.data(train=len(train_seq), test=len(test_seq))
    true_lower = test_seq[:, UPPER:]

    # ------------------------------------------------------------------ baselines
    start = time.perf_counter()
    mean_lower = np.broadcast_to(train_seq[:, UPPER:].mean(axis=0), true_lower.shape)
    neighbour_lower = nearest_lower(train_seq, test_seq)
    baseline_time = time.perf_counter() - start

    # ------------------------------------------------------------------ the two trainings
    epochs = ctx.epochs_or(EPOCHS, 1)
    models, predicted, timings, histories = {}, {}, {}, {}
    for name, scheduled in (("teacher_forcing", False), ("scheduled_sampling", True)):
        start = time.perf_counter()
        models[name], histories[name] = train_model(ctx, name, train_seq, epochs, scheduled)
        timings[name] = time.perf_counter() - start
        predicted[name] = predict_lower(models[name], test_seq)

    # ------------------------------------------------------------------ evaluation
    lowers = {
        **predicted,
        "baseline_mean_image": mean_lower,
        "baseline_nearest_neighbour": neighbour_lower,
    }
    ctx.record(
        epochs=epochs,
        batch_size=BATCH,
        lr=LR,
        hidden=HIDDEN,
        scheduled_sampling_max=SS_MAX,
        parameters=sum(p.numel() for p in models["teacher_forcing"].parameters()),
        train_time_s=timings,
        baseline_time_s=baseline_time,
        train_mse=histories,
        test_mse_lower={k: float(((v - true_lower) ** 2).mean()) for k, v in lowers.items()},
        test_mse_lower_teacher_forced={
            k: float(((predict_lower(m, test_seq, 0.0) - true_lower) ** 2).mean())
            for k, m in models.items()
        },
        test_mse_by_position={k: mse_by_position(v, true_lower) for k, v in lowers.items()},
    )

    # ------------------------------------------------------------------ figures
    show = slice(0, 10)
    given = test_seq[show].copy()
    given[:, UPPER:] = 0
    rows = {"upper half given": from_patches(given)}
    for name, label in (
        ("teacher_forcing", "LSTM, teacher forcing"),
        ("scheduled_sampling", "LSTM, sched. sampling"),
        ("baseline_nearest_neighbour", "nearest neighbour"),
        ("baseline_mean_image", "mean image"),
    ):
        whole = np.concatenate([test_seq[show, :UPPER], lowers[name][show]], axis=1)
        rows[label] = from_patches(whole)
    rows["true image"] = x_test[show]
    gen.image_rows(rows, ctx.figure("completions"), title="Lower halves completed patch by patch")
    steps = np.arange(UPPER, GRID * GRID)
    gen.curves(
        {
            "test MSE at each lower patch (free-running)": {
                k.replace("_", " "): (steps, v)
                for k, v in ctx.results["test_mse_by_position"].items()
            }
        },
        ctx.figure("mse_by_position"),
        xlabel="patch index in raster order (8-11: third row, 12-15: fourth)",
        ylabel="MSE (pixels in [0, 1])",
    )
