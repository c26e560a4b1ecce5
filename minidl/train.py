"""The training loop for the common case: ``fit`` and ``evaluate``.

``fit`` runs epochs of forward, loss, backward, optional gradient clipping and optimizer
step over a ``DataLoader`` of NumPy batches, evaluates on a validation loader, steps the LR
scheduler, and calls callbacks (early stopping, checkpoints, gradient-norm recording).
Projects with unusual loops (GANs, VAEs) write their own loop from the same pieces:
``batch_to_tensors``, ``evaluate``, ``Checkpoint``.

Determinism: with ``minidl.manual_seed(s)`` before the model and loaders are built, a run is
reproducible (a loader, sampler, ``random_split`` or random transform without its own
generator draws from the global one, as PyTorch's default generator); a ``Checkpoint``
stores the model, optimizer, scheduler, epoch, history, every callback's state
(``Callback.state_dict``), whether a callback stopped training, and both random
generators, so a run killed mid-epoch resumes from the last checkpoint and ends exactly
where the uninterrupted run ends.

The loader's random generator: a train loader whose order (or augmentation) is random
keeps it in an attribute ``generator``, a ``numpy.random.Generator`` that it draws from and
nothing else does (``minidl.data.DataLoader`` given a ``generator`` does; so must a
hand-written loader that wants a bit-identical resume). A checkpoint saves and restores
that generator's state; a loader without ``generator`` is deterministic or draws from the
global generator (``minidl.data.DataLoader`` without one), whose state the checkpoint
saves too.
"""

from __future__ import annotations

import copy
import io
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minidl import backend
from minidl.nn.module import Module
from minidl.optim.lr_scheduler import ReduceLROnPlateau
from minidl.tensor import Tensor, no_grad
from minidl.tensor_functions import as_tensor

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


class EmptyLoaderError(ValueError):
    """A loader gave no batch: training or evaluating on it would mean nothing."""


# --------------------------------------------------------------------- metrics
def _accuracy(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The fraction of samples whose predicted class equals the target (plain NumPy: the
    core package does not depend on scikit-learn)."""
    return float(np.mean(predictions(scores) == np.asarray(y_true).reshape(len(scores))))


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
    if not outputs:
        raise EmptyLoaderError(f"evaluate: the loader is empty ({_describe(loader)})")
    return np.concatenate(outputs), np.concatenate(targets)


def _describe(loader: Any) -> str:
    """A loader as an error message names it: its type and dataset length when known."""
    dataset = getattr(loader, "dataset", None)
    if dataset is not None and hasattr(dataset, "__len__"):
        return f"{type(loader).__name__} over a dataset of {len(dataset)} samples, 0 batches"
    return f"{type(loader).__name__} gave no batch"


def evaluate(
    model: Module,
    loader: Iterable,
    loss_fn: LossFn | None = None,
    metrics: Sequence[str] = ("accuracy",),
    device: str | None = None,
    comm: Any = None,
) -> dict[str, float]:
    """Mean loss (weighted by batch size) and the named metrics over a loader.

    ``comm`` (a ``minidl.distributed.Communicator``): each rank's loader holds its own part
    of the data; the outputs and targets of every rank are gathered, so every rank gets
    the metrics of the whole data (exact for any metric, not an average of averages)."""
    scores, targets = predict(model, loader, device)
    if comm is not None and comm.size > 1:
        scores, targets = (np.concatenate(comm.allgather(a)) for a in (scores, targets))
    out = {}
    if loss_fn is not None:
        with no_grad():
            out["loss"] = float(loss_fn(as_tensor(scores), as_tensor(targets)).item())
    for name in metrics:
        out[name] = METRICS[name](targets, scores)
    return out


# --------------------------------------------------------------------- callbacks
class Callback:
    """Hooks called by ``fit``; return True from ``on_epoch_end`` to stop training.

    A callback that keeps state across epochs (a best value, a patience count, recorded
    series) returns it from ``state_dict`` and takes it back in ``load_state_dict``: the
    checkpoint stores it, so a resumed run decides exactly as the uninterrupted one."""

    def state_dict(self) -> dict[str, Any]:
        """What ``load_state_dict`` needs to resume; plain values and arrays only."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what ``state_dict`` returned."""

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

    def state_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "best_state": self.best_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])
        self.wait, self.best_state = int(state["wait"]), state["best_state"]


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

    def state_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "norms": {k: list(v) for k, v in self.norms.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = [int(s) for s in state["steps"]]
        self.norms = {k: [float(v) for v in values] for k, values in state["norms"].items()}


class Checkpoint(Callback):
    """Save everything needed to resume after every ``every`` epochs to ``path``.

    ``fit`` calls checkpoints after every other callback of the epoch, so the file holds
    the other callbacks' state for that epoch and whether one of them stopped training.
    The train loader's ``generator`` (see the module docstring) is saved with it."""

    def __init__(self, path: str | os.PathLike, every: int = 1) -> None:
        self.path, self.every = os.fspath(path), every

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, float]) -> None:
        if trainer.epoch % self.every == 0:
            trainer.save_checkpoint(self.path)


# --------------------------------------------------------------------- the loop
_CHECKPOINT_KEYS = {"model", "optimizer", "epoch", "step", "history", "stopped", "callbacks", "rng"}


class Trainer:
    """The state of one training run; ``fit`` is its usual front door.

    The arguments are ``fit``'s options (``fit`` passes them on): ``val_loader`` evaluated
    after every epoch; ``scheduler`` stepped after every epoch, or after every batch with
    ``scheduler_step="batch"`` (OneCycleLR); a ReduceLROnPlateau is stepped with the
    validation loss (the training loss without a val_loader); ``metrics``: names from
    ``METRICS`` computed on the val_loader; ``clip_grad_norm``: the largest total gradient
    norm; ``callbacks``: ``Callback`` objects; ``device``: where batches go; ``progress``:
    a bar per epoch (with tqdm) and one printed line per epoch.

    ``distributed=True`` (or a ``Communicator``): data-parallel training over the ranks of
    ``mpiexec -n K`` (``minidl.distributed.training`` says how): the train loader's batch
    size is the global batch, split over the ranks; the logs are those of the whole data
    on every rank; rank 0 prints and writes checkpoints, which resume on any number of
    ranks. In a world of one (no launcher) it is one process with the same sampling."""

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
        distributed: Any = False,
    ) -> None:
        if scheduler_step not in ("epoch", "batch"):
            raise ValueError(f"scheduler_step must be 'epoch' or 'batch', got {scheduler_step!r}")
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.train_loader, self.val_loader = train_loader, val_loader
        self.scheduler, self.scheduler_step = scheduler, scheduler_step
        self.metrics, self.clip_grad_norm = tuple(metrics), clip_grad_norm
        self.callbacks, self.device, self.progress = list(callbacks), device, progress
        self.comm = None  # a distributed Communicator: this rank is one of comm.size
        if distributed:
            from minidl.distributed.training import prepare

            self.model, self.train_loader, self.val_loader, self.comm = prepare(
                model, train_loader, val_loader, distributed
            )
        self.is_main = self.comm is None or self.comm.is_main  # the rank that prints, saves
        self.progress = progress and self.is_main
        self.history = History()
        self.epoch = 0  # the next epoch to run
        self.step = 0
        self.stopped = False  # a callback ended training early

    # ----------------------------------------------------------------- one epoch
    def train_epoch(self) -> dict[str, float]:
        self.model.train()
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):  # DistributedSampler: this epoch's permutation
            sampler.set_epoch(self.epoch)
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
        if count == 0:
            raise EmptyLoaderError(
                f"fit: the train loader is empty ({_describe(self.train_loader)}); "
                "check the dataset and batch_size/drop_last"
            )
        if self.comm is not None and self.comm.size > 1:  # the mean over every rank's samples
            total, count = self.comm.allreduce(np.array([total, count], dtype=np.float64))
        return {"train_loss": float(total / count)}

    def run(self, epochs: int) -> History:
        """Train until ``epochs`` epochs have run in all (a resumed run continues)."""
        self._call("on_train_begin")
        while self.epoch < epochs and not self.stopped:
            start = time.perf_counter()
            logs: dict[str, float] = {"epoch": self.epoch + 1, "lr": self._lr()}
            logs.update(self.train_epoch())
            if self.val_loader is not None:
                try:
                    results = evaluate(
                        self.model,
                        self.val_loader,
                        self.loss_fn,
                        self.metrics,
                        self.device,
                        self.comm,
                    )
                except EmptyLoaderError as err:
                    raise EmptyLoaderError(f"fit: val_loader: {err}") from err
                logs.update({f"val_{k}": v for k, v in results.items()})
            self._step_scheduler(logs)
            logs["time"] = time.perf_counter() - start
            self.history.epochs.append(logs)
            self.epoch += 1
            # Checkpoints last: they save the other callbacks' state after this epoch.
            savers = [cb for cb in self.callbacks if isinstance(cb, Checkpoint)]
            others = [cb for cb in self.callbacks if not isinstance(cb, Checkpoint)]
            self.stopped = any([cb.on_epoch_end(self, logs) for cb in others])
            for cb in savers:
                cb.on_epoch_end(self, logs)
            if self.progress:
                print(" ".join(f"{k}={_fmt(v)}" for k, v in logs.items()), flush=True)
        self._call("on_train_end")
        return self.history

    def _step_scheduler(self, logs: dict[str, float]) -> None:
        if self.scheduler is None or self.scheduler_step != "epoch":
            return
        if isinstance(self.scheduler, ReduceLROnPlateau):
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
        from minidl.distributed.training import unwrap

        state = {
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "history": copy.deepcopy(self.history.epochs),
            "stopped": self.stopped,
            "callbacks": [[type(cb).__name__, cb.state_dict()] for cb in self._stateful()],
            "rng": backend.generator().bit_generator.state,
        }
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        loader_rng = loader_generator(self.train_loader)
        if loader_rng is not None:
            state["loader_rng"] = loader_rng.bit_generator.state
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            state["sampler_seed"] = sampler.seed
        return state

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Write the resumable state atomically (``minidl.save`` checks it on read).
        Distributed: rank 0 writes (the ranks hold the same state), the others wait, so
        when any rank goes on the checkpoint is complete on disk."""
        from minidl.serialization import save

        if self.is_main:
            os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
            save(self.state_dict(), path)
        if self.comm is not None:
            self.comm.barrier()

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore a checkpoint; distributed, rank 0 reads the file and sends its bytes to
        every rank (no shared file system needed), whatever the number of ranks that
        wrote it: the state is that of the whole run, not of one rank."""
        from minidl.distributed.training import unwrap
        from minidl.serialization import SerializationError, load

        if self.comm is None:
            state = load(path)
        else:
            with open(path, "rb") if self.is_main else nullcontext() as f:
                data = self.comm.broadcast_object(f.read() if self.is_main else None)
            state = load(io.BytesIO(data))
        missing = _CHECKPOINT_KEYS - set(state) if isinstance(state, dict) else _CHECKPOINT_KEYS
        if missing:  # a minidl file, but not a checkpoint (a bare state dict, say)
            raise SerializationError(
                f"{os.fspath(path)} is not a training checkpoint of this minidl: it lacks "
                f"{sorted(missing)}"
            )
        unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.history = History(list(state["history"]))
        self.stopped = bool(state["stopped"])
        self._load_callbacks(state["callbacks"], path)
        backend.generator().bit_generator.state = state["rng"]
        loader_rng = loader_generator(self.train_loader)
        if ("loader_rng" in state) != (loader_rng is not None):
            raise ValueError(
                f"{os.fspath(path)}: the checkpoint's train loader "
                f"{'had' if 'loader_rng' in state else 'had no'} random generator; this one "
                f"{'has' if loader_rng is not None else 'has none'}: resume with the same loader"
            )
        if loader_rng is not None:
            loader_rng.bit_generator.state = state["loader_rng"]
        if "sampler_seed" in state and hasattr(self.train_loader, "sampler"):
            self.train_loader.sampler.seed = int(state["sampler_seed"])

    def _stateful(self) -> list[Callback]:
        """The callbacks with a state to checkpoint (those that define ``state_dict``)."""
        return [cb for cb in self.callbacks if type(cb).state_dict is not Callback.state_dict]

    def _load_callbacks(self, saved: list[list[Any]], path: str | os.PathLike) -> None:
        callbacks = self._stateful()
        names = [type(cb).__name__ for cb in callbacks]
        if [name for name, _ in saved] != names:
            raise ValueError(
                f"{os.fspath(path)} holds the state of the callbacks {[n for n, _ in saved]}; "
                f"this run has {names}: resume with the same stateful callbacks in the same order"
            )
        for callback, (_, state) in zip(callbacks, saved):
            callback.load_state_dict(state)


def loader_generator(loader: Any) -> np.random.Generator | None:
    """The random generator a train loader draws its order from (its ``generator``
    attribute, see the module docstring), or None for a loader without one."""
    rng = getattr(loader, "generator", None)
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{type(loader).__name__}.generator must be a numpy.random.Generator for a "
            f"checkpoint to save it, got {type(rng).__name__}"
        )
    return rng


def fit(
    model: Module,
    loss_fn: LossFn,
    optimizer: Any,
    train_loader: Any,
    epochs: int,
    *,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    **options: Any,
) -> History:
    """Train ``model`` for ``epochs`` epochs and return the per-epoch history.

    ``checkpoint``: a path saved after every epoch; with ``resume=True`` and an existing
    checkpoint, training continues from it and ends where the uninterrupted run ends.
    ``options``: the ``Trainer``'s keyword arguments (``val_loader``, ``scheduler``,
    ``scheduler_step``, ``metrics``, ``clip_grad_norm``, ``callbacks``, ``device``,
    ``progress``, ``distributed``), documented there."""
    trainer = Trainer(model, loss_fn, optimizer, train_loader, **options)
    if checkpoint is not None:
        trainer.callbacks.append(Checkpoint(checkpoint))
    exists = checkpoint is not None and os.path.exists(checkpoint)
    if trainer.comm is not None:  # rank 0 decides, so that every rank does the same
        exists = trainer.comm.broadcast_object(exists)
    if resume and exists:
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
