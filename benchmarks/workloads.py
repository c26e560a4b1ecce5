"""The five benchmark models, written once for both engines.

minidl follows PyTorch's names, so each model is a function of the ``nn`` namespace
(``minidl.nn`` or ``torch.nn``) and the same code builds both. A ``Workload`` also makes a
fixed synthetic batch (NumPy, seeded) and names its loss. ``Engine`` wraps what differs
between the two engines: how arrays become tensors, the optimizer, and the RNG seed.

Choices where the issue is silent:
- the convolutions of W2 are 3x3 with padding 1 ("same"), those of W4 3x3x3 with none
  (28 -> 26 -> 13 -> 11 -> 5, so the dense layer reads 32 * 5**3 = 4000 features);
- W3 is an ``Embedding -> LSTM(batch_first) -> Linear(128, 1)`` on the last hidden state,
  with ``BCEWithLogitsLoss`` (the sigmoid inside the loss, as PyTorch users write it);
- W5 has a ReLU after its dense layer, ``ConvTranspose2d(k=4, s=2, p=1)`` (7 -> 14 -> 28),
  and, with no discriminator, its loss is the MSE to a fixed random image in [-1, 1];
- every workload trains with SGD(lr=0.01, momentum=0.9);
- W2, W4 and W5 run their model under ``nn.DataParallel``: minidl cuts the batch into one
  part per thread (``minidl/nn/data_parallel.py``); PyTorch's DataParallel, without a
  GPU, calls the model as it is (its ops use the threads inside). W1, W3 and W6 call the
  model directly, where minidl's parts would not pay (benchmarks/RESULTS.md, Multi-core).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

LR, MOMENTUM = 0.01, 0.9


# --------------------------------------------------------------------- models
def mlp(nn: ModuleType) -> Any:
    """W1: (128, 784) -> 256 -> 128 -> 10 logits."""
    return nn.Sequential(
        nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)
    )


def cifar_cnn(nn: ModuleType) -> Any:
    """W2: (64, 3, 32, 32) -> three conv-BN-ReLU-pool blocks -> (64, 128, 4, 4) -> 10 logits."""

    def block(c_in: int, c_out: int) -> list:
        conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        return [conv, nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(
        *block(3, 32),
        *block(32, 64),
        *block(64, 128),
        nn.Flatten(),
        nn.Linear(2048, 256),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(256, 10),
    )


def sentiment_lstm(nn: ModuleType) -> Any:
    """W3: tokens (64, 100) -> embeddings (64, 100, 100) -> LSTM(128) -> h_T (64, 128) -> 1."""

    class SentimentLSTM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(20000, 100)
            self.lstm = nn.LSTM(100, 128, batch_first=True)
            self.fc = nn.Linear(128, 1)

        def forward(self, tokens: Any) -> Any:
            _, (h_n, _) = self.lstm(self.embedding(tokens))
            return self.fc(h_n[-1])

    return SentimentLSTM()


def volume_cnn(nn: ModuleType) -> Any:
    """W4: (16, 1, 28, 28, 28) -> conv-ReLU-pool twice -> (16, 32, 5, 5, 5) -> 3 logits."""
    return nn.Sequential(
        nn.Conv3d(1, 16, 3),
        nn.ReLU(),
        nn.MaxPool3d(2),
        nn.Conv3d(16, 32, 3),
        nn.ReLU(),
        nn.MaxPool3d(2),
        nn.Flatten(),
        nn.Linear(32 * 5**3, 3),
    )


def dcgan_generator(nn: ModuleType) -> Any:
    """W5: z (64, 100) -> (64, 128, 7, 7) -> (64, 64, 14, 14) -> images (64, 1, 28, 28)."""
    return nn.Sequential(
        nn.Linear(100, 128 * 7 * 7),
        nn.ReLU(),
        nn.Unflatten(1, (128, 7, 7)),
        nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.ConvTranspose2d(64, 1, 4, stride=2, padding=1),
        nn.Tanh(),
    )


def wgan_critic(nn: ModuleType) -> Any:
    """W6: a small conv critic, images (64, 1, 28, 28) -> (64, 16, 14, 14) -> (64, 32, 7, 7)
    -> one score per image."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(16, 32, 4, stride=2, padding=1),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 1),
    )


class CriticLoss:
    """W6's loss, the WGAN-GP critic's: mean D(fake) - mean D(real) + 10 mean (||g|| - 1)^2
    with g = grad_x D(x) at x_hat = eps real + (1 - eps) fake, taken with create_graph=True
    so that the penalty's backward runs through the gradient (second order)."""

    def __init__(self, lib: ModuleType, eps: np.ndarray) -> None:
        self.lib, self.eps = lib, lib.from_numpy(eps)

    def __call__(self, model: Any, real: Any, fake: Any) -> Any:
        x_hat = (self.eps * real + (1 - self.eps) * fake).detach().requires_grad_(True)
        (g,) = self.lib.autograd.grad(model(x_hat).sum(), x_hat, create_graph=True)
        norm = ((g * g).reshape(len(g), -1).sum(1) + 1e-12).sqrt()
        return model(fake).mean() - model(real).mean() + 10 * ((norm - 1) ** 2).mean()


# --------------------------------------------------------------------- batches
def _images(shape: tuple[int, ...]) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda rng: rng.standard_normal(shape, dtype=np.float32)


def _classes(n: int, k: int) -> Callable[[np.random.Generator], np.ndarray]:
    return lambda rng: rng.integers(0, k, size=n, dtype=np.int64)


def _tokens(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 20000, size=(64, 100), dtype=np.int64)


def _labels01(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 2, size=(64, 1)).astype(np.float32)


def _target_images(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-1, 1, size=(64, 1, 28, 28)).astype(np.float32)


@dataclass(frozen=True)
class Workload:
    """One benchmark: the model (from ``nn``), its batch and its loss (a ``nn`` class name)."""

    key: str
    title: str
    build: Callable[[ModuleType], Any]
    make_input: Callable[[np.random.Generator], np.ndarray]
    make_target: Callable[[np.random.Generator], np.ndarray]
    loss: str
    goal: float  # the wanted upper bound of minidl time / PyTorch time
    data_parallel: bool = False  # the model runs under nn.DataParallel

    def batch(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The fixed synthetic (input, target) pair: the same arrays for both engines."""
        rng = np.random.default_rng(seed)
        return self.make_input(rng), self.make_target(rng)


WORKLOADS: dict[str, Workload] = {
    w.key: w
    for w in (
        Workload(
            "W1", "MLP 784-256-128-10, batch 128", mlp,
            _images((128, 784)), _classes(128, 10), "CrossEntropyLoss", goal=1.1,
        ),
        Workload(
            "W2", "CIFAR CNN 32-64-128 + BN, batch 64", cifar_cnn,
            _images((64, 3, 32, 32)), _classes(64, 10), "CrossEntropyLoss", goal=1.5,
            data_parallel=True,
        ),
        Workload(
            "W3", "LSTM(128) on 20000x100 embeddings, seq 100, batch 64", sentiment_lstm,
            _tokens, _labels01, "BCEWithLogitsLoss", goal=1.1,
        ),
        Workload(
            "W4", "3D CNN 1-16-32 on 28^3, batch 16", volume_cnn,
            _images((16, 1, 28, 28, 28)), _classes(16, 3), "CrossEntropyLoss", goal=2.0,
            data_parallel=True,
        ),
        Workload(
            "W5", "DCGAN generator 100 -> 1x28x28, batch 64", dcgan_generator,
            _images((64, 100)), _target_images, "MSELoss", goal=1.5,
            data_parallel=True,
        ),
        Workload(
            "W6", "WGAN-GP critic step (gradient penalty, double backward), batch 64",
            wgan_critic, _target_images, _target_images, "CriticLoss", goal=1.5,
        ),
    )
}  # fmt: skip


# --------------------------------------------------------------------- engines
class Engine:
    """What differs between minidl and PyTorch when training one workload."""

    def __init__(self, name: str, lib: ModuleType) -> None:
        self.name = name
        self.lib = lib  # ``minidl`` or ``torch``

    @classmethod
    def minidl(cls) -> Engine:
        import minidl

        return cls("minidl", minidl)

    @classmethod
    def torch(cls) -> Engine:
        import torch

        return cls("torch", torch)

    def build(self, workload: Workload, seed: int = 0) -> Any:
        """The workload's model, seeded, on the CPU (whatever minidl's default device),
        under ``nn.DataParallel`` where the workload asks for it."""
        self.lib.manual_seed(seed)
        model = workload.build(self.lib.nn).to("cpu")
        return self.lib.nn.DataParallel(model) if workload.data_parallel else model

    def tensor(self, array: np.ndarray) -> Any:
        """A tensor sharing the NumPy array's memory (both engines are on the CPU)."""
        return self.lib.from_numpy(array)

    def load_weights(self, model: Any, state: dict[str, np.ndarray]) -> None:
        """Load NumPy arrays (a state dict converted with ``.numpy()``) into ``model``."""
        model.load_state_dict({k: self.tensor(v.copy()) for k, v in state.items()})


def state_arrays(model: Any) -> dict[str, np.ndarray]:
    """A model's state dict as NumPy arrays (either engine)."""
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


@dataclass
class TrainingStep:
    """One engine's model, optimizer, batch and loss for one workload; ``step()`` trains."""

    engine: Engine
    model: Any
    optimizer: Any
    loss_fn: Any
    x: Any
    y: Any

    @classmethod
    def create(
        cls, engine: Engine, workload: Workload, weights: dict[str, np.ndarray] | None = None
    ) -> TrainingStep:
        """Build the model (loading ``weights`` when given) and its SGD, and the batch."""
        model = engine.build(workload)
        if weights is not None:
            engine.load_weights(model, weights)
        model.train()
        optimizer = engine.lib.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        x, y = workload.batch()
        if workload.loss == "CriticLoss":
            eps = np.random.default_rng(1).uniform(size=(len(x), 1, 1, 1)).astype(np.float32)
            loss_fn = CriticLoss(engine.lib, eps)
        else:
            loss_fn = getattr(engine.lib.nn, workload.loss)()
        return cls(engine, model, optimizer, loss_fn, engine.tensor(x), engine.tensor(y))

    def step(self) -> None:
        """One training step: forward, loss, backward, optimizer update."""
        self.optimizer.zero_grad()
        self.loss().backward()
        self.optimizer.step()

    def loss(self) -> Any:
        if isinstance(self.loss_fn, CriticLoss):
            return self.loss_fn(self.model, self.x, self.y)
        return self.loss_fn(self.model(self.x), self.y)

    def eval_loss(self) -> float:
        """The loss in eval mode (no dropout; BatchNorm on running statistics), no update."""
        self.model.eval()
        try:
            if isinstance(self.loss_fn, CriticLoss):  # needs a graph for its gradient
                return float(self.loss().item())
            with self.engine.lib.no_grad():
                return float(self.loss().item())
        finally:
            self.model.train()
