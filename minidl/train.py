"""The training loop for the common case: ``fit`` and ``evaluate``.

``fit`` runs epochs of forward, loss, backward, optional gradient clipping and optimizer
step over a ``DataLoader`` of NumPy batches, evaluates on a validation loader, steps the LR
scheduler, and calls callbacks (early stopping, checkpoints, gradient-norm recording).
Projects with unusual loops (GANs, VAEs) write their own loop from the same pieces:
``batch_to_tensors``, ``evaluate``, ``Checkpoint``.

Determinism: with ``minidl.manual_seed(s)`` before the model is built and a loader whose
generator is seeded, a run is reproducible; a ``Checkpoint`` stores the model, optimizer,
scheduler, epoch, history and both random generators, so a run killed mid-epoch resumes
from the last checkpoint and ends exactly where the uninterrupted run ends.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minidl import backend
from minidl.nn.module import Module
from minidl.tensor import Tensor, as_tensor, no_grad

LossFn = Callable[[Tensor, Tensor], Tensor]


def batch_to_tensors(batch: Any, device: str | None = None) -> tuple[Tensor, ...]:
    """A loader batch (tuple of arrays) as tensors on ``device``; float64 inputs become
    float32, the engine's default."""
    out = []
    for item in batch if isinstance(batch, (tuple, list)) else (batch,):
        array = item.data if isinstance(item, Tensor) else np.asarray(item)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        out.append(as_tensor(array, device=device))
    return tuple(out)


@dataclass
class History:
    """One dict per epoch: ``epoch``, ``lr``, ``train_loss``, ``val_loss``, metrics, time."""

    epochs: list[dict[str, float]] = field(default_factory=list)

    def series(self, key: str) -> list[float]:
        return [e[key] for e in self.epochs if key in e]

    @property
    def last(self) -> dict[str, float]:
        return self.epochs[-1] if self.epochs else {}


# --------------------------------------------------------------------- metrics
def _accuracy(y_true: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y_true, predictions(scores)))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"accuracy": _accuracy}


def predictions(scores: np.ndarray) -> np.ndarray:
    """Class predictions from model outputs: argmax of (N, C) scores, or a threshold at 0
    for (N,) / (N, 1) logits of a binary model."""
    if scores.ndim == 1 or scores.shape[-1] == 1:
        return (scores.reshape(len(scores)) > 0).astype(np.int64)
    return scores.argmax(axis=-1)


def predict(
    model: Module, loader: Iterable, device: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(outputs, targets) over a loader of (input, target) batches, in eval mode."""
    was_training = model.training
    model.eval()
    outputs, targets = [], []
    with no_grad():
        for batch in loader:
            x, y = batch_to_tensors(batch, device)[:2]
            outputs.append(model(x).numpy())
            targets.append(y.numpy())
    model.train(was_training)
    return np.concatenate(outputs), np.concatenate(targets)


def evaluate(
    model: Module,
    loader: Iterable,
    loss_fn: LossFn | None = None,
    metrics: Sequence[str] = ("accuracy",),
    device: str | None = None,
) -> dict[str, float]:
    """Mean loss (weighted by batch size) and the named metrics over a loader."""
    scores, targets = predict(model, loader, device)
    out = {}
    if loss_fn is not None:
        with no_grad():
            out["loss"] = float(loss_fn(as_tensor(scores), as_tensor(targets)).item())
    for name in metrics:
        out[name] = METRICS[name](targets, scores)
    return out


# --------------------------------------------------------------------- callbacks
class Callback:
    """Hooks called by ``fit``; return True from ``on_epoch_end`` to stop training."""

    def on_train_begin(self, trainer: Trainer) -> None: ...

    def on_after_backward(self, trainer: Trainer) -> None: ...

    def on_batch_end(self, trainer: Trainer, loss: float) -> None: ...

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> bool | None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs;
    with ``restore_best_weights``, put back the best epoch's weights at the end."""

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        mode: str = "min",
        min_delta: float = 0.0,
        restore_best_weights: bool = True,
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.mode = monitor, patience, mode
        self.min_delta, self.restore = min_delta, restore_best_weights
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch, self.best_state, self.wait = -1, None, 0

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> bool:
        if self.monitor not in logs:
            raise KeyError(f"EarlyStopping: {self.monitor!r} is not logged; have {list(logs)}")
        if self._improved(logs[self.monitor]):
            self.best, self.best_epoch, self.wait = logs[self.monitor], logs["epoch"], 0
            if self.restore:
                self.best_state = {
                    k: v.numpy().copy() for k, v in trainer.model.state_dict().items()
                }
            return False
        self.wait += 1
        return self.wait >= self.patience

    def on_train_end(self, trainer: Trainer) -> None:
        """Put back the best epoch's weights, whether training stopped early or ran out."""
        if self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)


class GradNormRecorder(Callback):
    """Record the L2 norm of each parameter's gradient every ``every`` steps: the data of
    a per-layer gradient-norm plot (vanishing and exploding gradients)."""

    def __init__(self, every: int = 10) -> None:
        self.every = every
        self.steps: list[int] = []
        self.norms: dict[str, list[float]] = {}

    def on_after_backward(self, trainer: Trainer) -> None:
        if trainer.step % self.every:
            return
        self.steps.append(trainer.step)
        for name, p in trainer.model.named_parameters():
            if p.grad is not None:
                norm = float(backend.to_numpy((p.grad.data**2).sum())) ** 0.5
                self.norms.setdefault(name, []).append(norm)


class Checkpoint(Callback):
    """Save everything needed to resume after every ``every`` epochs to ``path``."""

    def __init__(self, path: str | os.PathLike, every: int = 1) -> None:
        self.path, self.every = os.fspath(path), every

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if trainer.epoch % self.every == 0:
            trainer.save_checkpoint(self.path)


# --------------------------------------------------------------------- the loop
class Trainer:
    """The state of one training run; ``fit`` is its usual front door."""

    def __init__(
        self,
        model: Module,
        loss_fn: LossFn,
        optimizer: Any,
        train_loader: Any,
        val_loader: Any = None,
        scheduler: Any = None,
        scheduler_step: str = "epoch",
        metrics: Sequence[str] = (),
        clip_grad_norm: float | None = None,
        callbacks: Sequence[Callback] = (),
        device: str | None = None,
        progress: bool = True,
    ) -> None:
        if scheduler_step not in ("epoch", "batch"):
            raise ValueError(f"scheduler_step must be 'epoch' or 'batch', got {scheduler_step!r}")
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.train_loader, self.val_loader = train_loader, val_loader
        self.scheduler, self.scheduler_step = scheduler, scheduler_step
        self.metrics, self.clip_grad_norm = tuple(metrics), clip_grad_norm
        self.callbacks, self.device, self.progress = list(callbacks), device, progress
        self.history = History()
        self.epoch = 0  # the next epoch to run
        self.step = 0

    # ----------------------------------------------------------------- one epoch
    def train_epoch(self) -> dict[str, float]:
        self.model.train()
        total, count = 0.0, 0
        bar = _progress(self.train_loader, f"epoch {self.epoch + 1}", self.progress)
        for batch in bar:
            x, y = batch_to_tensors(batch, self.device)[:2]
            loss = self.loss_fn(self.model(x), y)
            self.optimizer.zero_grad()
            loss.backward()
            self._call("on_after_backward")
            if self.clip_grad_norm is not None:
                from minidl.nn.utils import clip_grad_norm_

                clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
            self.optimizer.step()
            if self.scheduler is not None and self.scheduler_step == "batch":
                self.scheduler.step()
            value = float(loss.item())
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"loss became {value} at epoch {self.epoch + 1}, "
                    f"step {self.step}; lower the learning rate?"
                )
            total, count = total + value * len(y), count + len(y)
            self.step += 1
            self._call("on_batch_end", value)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{total / count:.4f}")
        return {"train_loss": total / max(count, 1)}

    def run(self, epochs: int) -> History:
        """Train until ``epochs`` epochs have run in all (a resumed run continues)."""
        self._call("on_train_begin")
        while self.epoch < epochs:
            start = time.perf_counter()
            logs: dict[str, float] = {"epoch": self.epoch + 1, "lr": self._lr()}
            logs.update(self.train_epoch())
            if self.val_loader is not None:
                results = evaluate(
                    self.model, self.val_loader, self.loss_fn, self.metrics, self.device
                )
                logs.update({f"val_{k}": v for k, v in results.items()})
            self._step_scheduler(logs)
            logs["time"] = time.perf_counter() - start
            self.history.epochs.append(logs)
            self.epoch += 1
            stop = [cb.on_epoch_end(self, logs) for cb in self.callbacks]
            if self.progress:
                print(" ".join(f"{k}={_fmt(v)}" for k, v in logs.items()))
            if any(stop):
                break
        self._call("on_train_end")
        return self.history

    def _step_scheduler(self, logs: dict[str, float]) -> None:
        if self.scheduler is None or self.scheduler_step != "epoch":
            return
        if type(self.scheduler).__name__ == "ReduceLROnPlateau":
            self.scheduler.step(logs.get("val_loss", logs["train_loss"]))
        else:
            self.scheduler.step()

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "history": copy.deepcopy(self.history.epochs),
            "rng": backend.generator().bit_generator.state,
        }
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        loader_rng = getattr(self.train_loader, "generator", None)
        if loader_rng is not None:
            state["loader_rng"] = loader_rng.bit_generator.state
        return state

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Write the resumable state atomically (``minidl.save`` checks it on read)."""
        from minidl.serialization import save

        os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
        save(self.state_dict(), path)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        from minidl.serialization import load

        state = load(path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.history = History(list(state["history"]))
        backend.generator().bit_generator.state = state["rng"]
        if "loader_rng" in state:
            self.train_loader.generator.bit_generator.state = state["loader_rng"]


def fit(
    model: Module,
    loss_fn: LossFn,
    optimizer: Any,
    train_loader: Any,
    epochs: int,
    val_loader: Any = None,
    scheduler: Any = None,
    scheduler_step: str = "epoch",
    metrics: Sequence[str] = (),
    clip_grad_norm: float | None = None,
    callbacks: Sequence[Callback] = (),
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
) -> History:
    """Train ``model`` for ``epochs`` epochs and return the per-epoch history.

    ``checkpoint``: a path saved after every epoch; with ``resume=True`` and an existing
    checkpoint, training continues from it. ``scheduler_step="batch"`` steps the scheduler
    after every batch (OneCycleLR); ReduceLROnPlateau is stepped with the validation loss.
    ``metrics``: names from ``minidl.train.METRICS`` (computed by scikit-learn)."""
    callbacks = list(callbacks)
    if checkpoint is not None:
        callbacks.append(Checkpoint(checkpoint))
    trainer = Trainer(
        model,
        loss_fn,
        optimizer,
        train_loader,
        val_loader,
        scheduler,
        scheduler_step,
        metrics,
        clip_grad_norm,
        callbacks,
        device,
        progress,
    )
    if resume and checkpoint is not None and os.path.exists(checkpoint):
        trainer.load_checkpoint(checkpoint)
    return trainer.run(epochs)


def _progress(loader: Iterable, description: str, enabled: bool) -> Iterable:
    """A tqdm bar over the loader when tqdm is installed and ``enabled``."""
    if not enabled:
        return loader
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return loader
    return tqdm(loader, desc=description, leave=False)


def _fmt(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
