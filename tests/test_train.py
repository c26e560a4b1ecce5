"""The training loop: it learns, it is deterministic, and a killed run resumes exactly."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset
from minidl.train import (
    Callback,
    EarlyStopping,
    GradNormRecorder,
    evaluate,
    fit,
    loader_generator,
)


def _blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0]])
    x = centers[y] + 0.5 * rng.standard_normal((n, 2))
    return x.astype(np.float32), y


def _setup(seed=0):
    md.manual_seed(seed)
    x, y = _blobs()
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=seed)
    val = DataLoader(TensorDataset(x, y), batch_size=64)
    return model, opt, sched, loader, val


def _params(model):
    return [p.numpy().copy() for p in model.parameters()]


def test_fit_learns_and_logs_history():
    model, opt, sched, loader, val = _setup()
    history = fit(
        model,
        nn.functional.cross_entropy,
        opt,
        loader,
        5,
        val_loader=val,
        scheduler=sched,
        metrics=["accuracy"],
        progress=False,
    )
    assert len(history.epochs) == 5
    assert history.series("train_loss")[-1] < history.series("train_loss")[0]
    assert history.last["val_accuracy"] > 0.9
    assert history.series("lr") == [0.1, 0.1, 0.05, 0.05, 0.025]


def test_same_seed_same_result():
    runs = []
    for _ in range(2):
        model, opt, sched, loader, _ = _setup(seed=3)
        fit(model, nn.functional.cross_entropy, opt, loader, 2, scheduler=sched, progress=False)
        runs.append(_params(model))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


class _Kill(Callback):
    """Simulate a crash in the middle of an epoch."""

    def __init__(self, at_step):
        self.at_step = at_step

    def on_batch_end(self, trainer, loss):
        if trainer.step == self.at_step:
            raise KeyboardInterrupt


def test_killed_run_resumes_to_the_same_result(tmp_path):
    model, opt, sched, loader, _ = _setup(seed=7)
    fit(model, nn.functional.cross_entropy, opt, loader, 4, scheduler=sched, progress=False)
    uninterrupted = _params(model)

    ckpt = tmp_path / "run.ckpt"
    model, opt, sched, loader, _ = _setup(seed=7)
    steps_per_epoch = len(loader)
    with pytest.raises(KeyboardInterrupt):
        fit(
            model,
            nn.functional.cross_entropy,
            opt,
            loader,
            4,
            scheduler=sched,
            checkpoint=ckpt,
            callbacks=[_Kill(2 * steps_per_epoch + 3)],
            progress=False,
        )
    # A new process: everything rebuilt from scratch (another seed on purpose), then resumed.
    model, opt, sched, loader, _ = _setup(seed=99)
    history = fit(
        model,
        nn.functional.cross_entropy,
        opt,
        loader,
        4,
        scheduler=sched,
        checkpoint=ckpt,
        resume=True,
        progress=False,
    )
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3, 4]
    for a, b in zip(uninterrupted, _params(model)):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_restores_the_best_weights():
    model, opt, _, loader, val = _setup()
    stopper = EarlyStopping("val_accuracy", patience=1, mode="max", min_delta=1.0)
    history = fit(
        model,
        nn.functional.cross_entropy,
        opt,
        loader,
        10,
        val_loader=val,
        metrics=["accuracy"],
        callbacks=[stopper],
        progress=False,
    )
    assert len(history.epochs) == 2  # nothing can improve by 1.0 after the first epoch
    assert evaluate(model, val)["accuracy"] == pytest.approx(history.epochs[0]["val_accuracy"])


def test_grad_norm_recorder_and_clipping():
    model, opt, _, loader, _ = _setup()
    recorder = GradNormRecorder(every=1)
    fit(
        model,
        nn.functional.cross_entropy,
        opt,
        loader,
        1,
        clip_grad_norm=0.5,
        callbacks=[recorder],
        progress=False,
    )
    assert set(recorder.norms) == {n for n, _ in model.named_parameters()}
    assert len(recorder.steps) == len(loader)
    # recorded before clipping: the total norm can exceed 0.5, the clipped step cannot
    assert all(np.isfinite(v).all() for v in recorder.norms.values())


def test_diverging_loss_is_reported():
    model, _, _, loader, _ = _setup()
    opt = optim.SGD(model.parameters(), lr=1e30)
    with pytest.raises(FloatingPointError, match="loss became"):
        fit(model, nn.functional.cross_entropy, opt, loader, 3, progress=False)


def test_early_stopping_restores_the_best_weights_when_epochs_run_out():
    model, opt, _, loader, val = _setup()
    stopper = EarlyStopping("val_loss", patience=100)
    history = fit(
        model,
        nn.functional.cross_entropy,
        opt,
        loader,
        4,
        val_loader=val,
        callbacks=[stopper],
        progress=False,
    )
    best = min(history.series("val_loss"))
    assert evaluate(model, val, nn.functional.cross_entropy, metrics=())["loss"] == (
        pytest.approx(best, rel=1e-5)
    )


def _fit_with_every_callback(seed, ckpt, kill_at_step=None, resume=False):
    """A run with every built-in callback (EarlyStopping, GradNormRecorder, Checkpoint)
    and ReduceLROnPlateau; returns (history, weights, stopper, recorder)."""
    model, opt, _, loader, val = _setup(seed=seed)
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    # Big min_delta: the run stops early, with a patience count running at most epochs.
    stopper = EarlyStopping("val_loss", patience=3, min_delta=0.02)
    recorder = GradNormRecorder(every=5)
    callbacks = [stopper, recorder] + ([_Kill(kill_at_step)] if kill_at_step else [])
    history = fit(
        model,
        nn.functional.cross_entropy,
        opt,
        loader,
        40,
        val_loader=val,
        scheduler=sched,
        callbacks=callbacks,
        checkpoint=ckpt,
        resume=resume,
        progress=False,
    )
    return history, _params(model), stopper, recorder


def test_resume_with_every_builtin_callback_ends_where_the_uninterrupted_run_ends(tmp_path):
    """Killed in the middle of each epoch in turn, then resumed from the checkpoint in a
    fresh setup: the same epochs, the same stop, the same weights and the same recorded
    gradient norms as the run that was never killed."""
    history, weights, stopper, recorder = _fit_with_every_callback(7, tmp_path / "straight")
    stop_epoch = len(history.epochs)
    assert stop_epoch < 40 and stopper.wait == 3  # early stopping decided the end
    steps_per_epoch = len(_setup()[3])
    untimed = [{k: v for k, v in e.items() if k != "time"} for e in history.epochs]
    checkpoints = []
    for killed_in in range(2, stop_epoch + 1):
        checkpoints.append(tmp_path / f"killed_in_{killed_in}")
        kill_at = (killed_in - 1) * steps_per_epoch + 2
        with pytest.raises(KeyboardInterrupt):
            _fit_with_every_callback(7, checkpoints[-1], kill_at_step=kill_at)
    # Resuming a run that had already stopped trains no further and ends the same.
    checkpoints.append(tmp_path / "straight")
    for ckpt in checkpoints:
        resumed = _fit_with_every_callback(99, ckpt, resume=True)
        assert [{k: v for k, v in e.items() if k != "time"} for e in resumed[0].epochs] == untimed
        for a, b in zip(weights, resumed[1]):
            np.testing.assert_array_equal(a, b)
        assert (resumed[2].best_epoch, resumed[2].wait) == (stopper.best_epoch, stopper.wait)
        assert resumed[3].steps == recorder.steps and resumed[3].norms == recorder.norms


def test_resume_refuses_other_stateful_callbacks(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    model, opt, _, loader, val = _setup()
    fit(model, nn.functional.cross_entropy, opt, loader, 1, checkpoint=ckpt, progress=False)
    model, opt, _, loader, val = _setup()
    with pytest.raises(ValueError, match="EarlyStopping"):
        fit(
            model,
            nn.functional.cross_entropy,
            opt,
            loader,
            2,
            val_loader=val,
            callbacks=[EarlyStopping()],
            checkpoint=ckpt,
            resume=True,
            progress=False,
        )


def test_a_loader_generator_that_is_not_a_numpy_generator_is_refused():
    class Loader(list):
        generator = 3

    with pytest.raises(TypeError, match="must be a numpy"):
        loader_generator(Loader())


# --------------------------------------------------------------------- defects (issue 10)
def test_fit_on_an_empty_loader_names_it():
    model, opt, _, _, _ = _setup()
    empty = DataLoader(TensorDataset(np.zeros((0, 2), np.float32), np.zeros(0, np.int64)))
    with pytest.raises(ValueError, match=r"fit: the train loader is empty.*0 samples"):
        fit(model, nn.functional.cross_entropy, opt, empty, 1, progress=False)
    _, _, _, loader, _ = _setup()
    with pytest.raises(ValueError, match="fit: val_loader: evaluate: the loader is empty"):
        fit(model, nn.functional.cross_entropy, opt, loader, 1, val_loader=empty, progress=False)


def test_evaluate_on_an_empty_loader_names_it():
    model, *_ = _setup()
    small = DataLoader(TensorDataset(np.zeros((3, 2), np.float32)), batch_size=4, drop_last=True)
    with pytest.raises(ValueError, match=r"evaluate: the loader is empty.*3 samples, 0 batches"):
        evaluate(model, small)


def test_evaluate_accuracy_does_not_need_scikit_learn(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sklearn", None)  # any import of it now fails
    monkeypatch.setitem(sys.modules, "sklearn.metrics", None)
    model, opt, _, loader, val = _setup()
    fit(model, nn.functional.cross_entropy, opt, loader, 3, progress=False)
    scores, targets = md.train.predict(model, val)
    got = evaluate(model, val)["accuracy"]
    assert got == np.mean(scores.argmax(1) == targets) and got > 0.9


def test_resume_from_a_file_that_is_not_a_checkpoint_names_it(tmp_path):
    from minidl.serialization import SerializationError

    model, opt, _, loader, _ = _setup()
    state_dict_only = tmp_path / "weights.mdl"
    md.save(model.state_dict(), state_dict_only)
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    for path in (state_dict_only, damaged):
        with pytest.raises(SerializationError, match=path.name):
            fit(
                model,
                nn.functional.cross_entropy,
                opt,
                loader,
                1,
                checkpoint=path,
                resume=True,
                progress=False,
            )
