"""Learning-rate schedules: each against its closed form, against PyTorch's lr sequence
(40 steps, two param groups), and resumed from a state dict."""

from __future__ import annotations

import copy
import math
from bisect import bisect_right

import numpy as np
import pytest

import minidl
from minidl import optim
from minidl.nn import Parameter
from minidl.optim import lr_scheduler as S

BASE_LRS = (0.1, 0.03)
STEPS = 40


def make_optimizer(kind: str = "SGD", lrs=BASE_LRS) -> optim.Optimizer:
    groups = [{"params": [Parameter(minidl.zeros(1))], "lr": lr} for lr in lrs]
    if kind == "SGD":
        return optim.SGD(groups, momentum=0.9)
    return optim.Adam(groups)


def lr_sequence(scheduler, steps: int = STEPS) -> list[list[float]]:
    """The lrs after construction and after each of ``steps`` steps."""
    out = [list(scheduler.get_last_lr())]
    for _ in range(steps):
        scheduler.optimizer.step()
        scheduler.step()
        out.append(list(scheduler.get_last_lr()))
    return out


# name -> (factory of our scheduler given an optimizer, closed form of epoch and base lr)
SCHEDULES = {
    "StepLR": (
        lambda opt: S.StepLR(opt, step_size=7, gamma=0.5),
        lambda t, base: base * 0.5 ** (t // 7),
    ),
    "MultiStepLR": (
        lambda opt: S.MultiStepLR(opt, milestones=[5, 12, 12, 30], gamma=0.3),
        lambda t, base: base * 0.3 ** bisect_right([5, 12, 12, 30], t),
    ),
    "ExponentialLR": (
        lambda opt: S.ExponentialLR(opt, gamma=0.93),
        lambda t, base: base * 0.93**t,
    ),
    "CosineAnnealingLR": (
        lambda opt: S.CosineAnnealingLR(opt, T_max=15, eta_min=0.001),
        lambda t, base: 0.001 + (base - 0.001) * (1 + math.cos(math.pi * t / 15)) / 2,
    ),
    "LinearLR": (
        lambda opt: S.LinearLR(opt, start_factor=0.25, end_factor=0.9, total_iters=10),
        lambda t, base: base * (0.25 + 0.65 * min(t, 10) / 10),
    ),
    "LinearLR defaults": (
        lambda opt: S.LinearLR(opt),
        lambda t, base: base * (1 / 3 + (2 / 3) * min(t, 5) / 5),
    ),
    "LambdaLR": (
        lambda opt: S.LambdaLR(opt, lambda epoch: 1 / (1 + epoch)),
        lambda t, base: base / (1 + t),
    ),
    "MultiplicativeLR": (
        lambda opt: S.MultiplicativeLR(opt, lambda epoch: 0.95),
        lambda t, base: base * 0.95**t,
    ),
    "ConstantLR": (
        lambda opt: S.ConstantLR(opt, factor=0.25, total_iters=6),
        lambda t, base: base * (0.25 if t < 6 else 1.0),
    ),
    "ConstantLR defaults": (
        lambda opt: S.ConstantLR(opt),
        lambda t, base: base * (1 / 3 if t < 5 else 1.0),
    ),
    "PolynomialLR": (
        lambda opt: S.PolynomialLR(opt, total_iters=30, power=2.0),
        lambda t, base: base * (1 - min(t, 30) / 30) ** 2,
    ),
    "PolynomialLR defaults": (
        lambda opt: S.PolynomialLR(opt),
        lambda t, base: base * (1 - min(t, 5) / 5),
    ),
    "CosineAnnealingWarmRestarts": (
        lambda opt: S.CosineAnnealingWarmRestarts(opt, T_0=7, eta_min=0.001),
        lambda t, base: 0.001 + (base - 0.001) * (1 + math.cos(math.pi * (t % 7) / 7)) / 2,
    ),
    "CosineAnnealingWarmRestarts T_mult": (
        lambda opt: S.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2),
        lambda t, base: base * (1 + math.cos(math.pi * _sgdr_position(t, 3, 2))) / 2,
    ),
}


def _sgdr_position(t: int, T_0: int, T_mult: int) -> float:
    """T_cur / T_i of SGDR at epoch t, by walking the periods."""
    period = T_0
    while t >= period:
        t -= period
        period *= T_mult
    return t / period


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_follows_its_closed_form(name):
    factory, closed_form = SCHEDULES[name]
    sequence = lr_sequence(factory(make_optimizer()))
    for t, lrs in enumerate(sequence):
        np.testing.assert_allclose(lrs, [closed_form(t, b) for b in BASE_LRS], rtol=1e-9)


def torch_twin(kind: str = "SGD"):
    torch = pytest.importorskip("torch")
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in BASE_LRS]
    if kind == "SGD":
        return torch, torch.optim.SGD(groups, momentum=0.9)
    return torch, torch.optim.Adam(groups)


def torch_sequence(scheduler, steps: int = STEPS) -> list[list[float]]:
    out = [list(scheduler.get_last_lr())]
    for _ in range(steps):
        scheduler.optimizer.step()
        scheduler.step()
        out.append(list(scheduler.get_last_lr()))
    return out


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_matches_torch(name):
    torch, topt = torch_twin()
    factory, _ = SCHEDULES[name]
    theirs = torch_equivalent(torch, name, topt)
    np.testing.assert_allclose(
        lr_sequence(factory(make_optimizer())), torch_sequence(theirs), rtol=1e-12
    )


def torch_equivalent(torch, name, topt):
    """The PyTorch scheduler built with the same arguments as ``SCHEDULES[name]``."""
    T = torch.optim.lr_scheduler
    return {
        "StepLR": lambda: T.StepLR(topt, step_size=7, gamma=0.5),
        "MultiStepLR": lambda: T.MultiStepLR(topt, milestones=[5, 12, 12, 30], gamma=0.3),
        "ExponentialLR": lambda: T.ExponentialLR(topt, gamma=0.93),
        "CosineAnnealingLR": lambda: T.CosineAnnealingLR(topt, T_max=15, eta_min=0.001),
        "LinearLR": lambda: T.LinearLR(topt, start_factor=0.25, end_factor=0.9, total_iters=10),
        "LinearLR defaults": lambda: T.LinearLR(topt),
        "LambdaLR": lambda: T.LambdaLR(topt, lambda epoch: 1 / (1 + epoch)),
        "MultiplicativeLR": lambda: T.MultiplicativeLR(topt, lambda epoch: 0.95),
        "ConstantLR": lambda: T.ConstantLR(topt, factor=0.25, total_iters=6),
        "ConstantLR defaults": lambda: T.ConstantLR(topt),
        "PolynomialLR": lambda: T.PolynomialLR(topt, total_iters=30, power=2.0),
        "PolynomialLR defaults": lambda: T.PolynomialLR(topt),
        "CosineAnnealingWarmRestarts": lambda: T.CosineAnnealingWarmRestarts(
            topt, T_0=7, eta_min=0.001
        ),
        "CosineAnnealingWarmRestarts T_mult": lambda: T.CosineAnnealingWarmRestarts(
            topt, T_0=3, T_mult=2
        ),
    }[name]()


def test_cosine_goes_on_past_t_max_like_torch():
    torch, topt = torch_twin()
    ours = S.CosineAnnealingLR(make_optimizer(), T_max=6)
    theirs = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=6)
    np.testing.assert_allclose(lr_sequence(ours, 30), torch_sequence(theirs, 30), rtol=1e-12)


def test_constructor_makes_the_initial_step():
    opt = make_optimizer()
    sched = S.StepLR(opt, step_size=2)
    assert sched.last_epoch == 0 and sched._step_count == 1
    assert [g["initial_lr"] for g in opt.param_groups] == list(BASE_LRS)
    assert sched.base_lrs == list(BASE_LRS)
    linear = S.LinearLR(make_optimizer(), start_factor=0.5)
    assert [g["lr"] for g in linear.optimizer.param_groups] == [0.05, 0.015]


def test_step_with_epoch_jumps_by_the_closed_form():
    sched = S.StepLR(make_optimizer(), step_size=3, gamma=0.1)
    with pytest.warns(UserWarning, match="deprecated"):
        sched.step(7)
    np.testing.assert_allclose(sched.get_last_lr(), [b * 0.01 for b in BASE_LRS])
    assert sched.last_epoch == 7


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda opt: S.StepLR(opt, step_size=0), "StepLR: step_size must be a positive integer"),
        (lambda opt: S.StepLR(opt, step_size=2.5), "StepLR: step_size"),
        (lambda opt: S.CosineAnnealingLR(opt, T_max=0), "CosineAnnealingLR: T_max"),
        (lambda opt: S.LinearLR(opt, total_iters=0), "LinearLR: total_iters"),
        (lambda opt: S.ExponentialLR(opt, gamma="0.9"), "ExponentialLR: gamma"),
        (lambda opt: S.MultiStepLR(opt, milestones=[2, 3.5]), "MultiStepLR: milestones"),
        (lambda opt: S.ConstantLR(opt, factor=2.0), "ConstantLR: factor"),
        (lambda opt: S.PolynomialLR(opt, total_iters=0), "PolynomialLR: total_iters"),
        (lambda opt: S.CosineAnnealingWarmRestarts(opt, T_0=0), "T_0"),
        (lambda opt: S.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=0), "T_mult"),
        (lambda opt: S.CyclicLR(opt, 0.01, 0.1, step_size_up=0), "CyclicLR: step_size_up"),
        (lambda opt: S.CyclicLR(opt, 0.01, 0.1, mode="sine"), "CyclicLR: mode"),
    ],
)
def test_arguments_are_validated_where_given(make, message):
    with pytest.raises(ValueError, match=message):
        make(make_optimizer())


@pytest.mark.parametrize("cls", [S.LambdaLR, S.MultiplicativeLR])
def test_lr_lambda_must_be_callable(cls):
    with pytest.raises(TypeError, match=f"{cls.__name__}: lr_lambda must be a function.*0.5"):
        cls(make_optimizer(), lr_lambda=0.5)
    with pytest.raises(TypeError, match=r"lr_lambda\[1\]"):
        cls(make_optimizer(), lr_lambda=[lambda e: 1.0, 2.0])


def test_warm_restarts_fractional_epochs_match_torch():
    torch, topt = torch_twin()
    ours = S.CosineAnnealingWarmRestarts(make_optimizer(), T_0=4, T_mult=2, eta_min=0.01)
    theirs = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        topt, T_0=4, T_mult=2, eta_min=0.01
    )
    for epoch in np.arange(0, 30, 0.35):
        ours.step(float(epoch))  # the documented per-batch use: no deprecation warning
        theirs.step(float(epoch))
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12)


CYCLIC_VARIANTS = [
    ("SGD", dict(base_lr=0.01, max_lr=0.1, step_size_up=4)),
    (
        "SGD",
        dict(
            base_lr=[0.01, 0.02], max_lr=0.2, step_size_up=3, step_size_down=5, mode="triangular2"
        ),
    ),
    ("SGD", dict(base_lr=0.01, max_lr=0.1, step_size_up=5, mode="exp_range", gamma=0.97)),
    (
        "Adam",
        dict(base_lr=0.001, max_lr=0.01, step_size_up=6, base_momentum=0.7, max_momentum=0.95),
    ),
    (
        "Adam",
        dict(
            base_lr=0.001,
            max_lr=0.01,
            step_size_up=3,
            cycle_momentum=False,
            scale_fn=lambda x: 0.9**x,
            scale_mode="iterations",
        ),
    ),
]


@pytest.mark.parametrize(("kind", "kwargs"), CYCLIC_VARIANTS)
def test_cyclic_matches_torch(kind, kwargs):
    torch, topt = torch_twin(kind)
    opt = make_optimizer(kind)
    ours = S.CyclicLR(opt, **kwargs)
    theirs = torch.optim.lr_scheduler.CyclicLR(topt, **kwargs)
    key = "betas" if kind == "Adam" else "momentum"
    for _ in range(STEPS):
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12)
        for g, tg in zip(opt.param_groups, topt.param_groups):
            np.testing.assert_allclose(g[key], tg[key], rtol=1e-12)
        opt.step()
        topt.step()
        ours.step()
        theirs.step()


def test_cyclic_needs_momentum_to_cycle_it():
    adagrad = optim.Adagrad([Parameter(minidl.zeros(1))])
    with pytest.raises(ValueError, match="momentum or betas"):
        S.CyclicLR(adagrad, 0.01, 0.1)
    S.CyclicLR(adagrad, 0.01, 0.1, cycle_momentum=False)


def test_resuming_needs_initial_lr():
    with pytest.raises(KeyError, match="initial_lr"):
        S.StepLR(make_optimizer(), step_size=2, last_epoch=5)


# --------------------------------------------------------------------- SequentialLR
def warmup_then_cosine(opt):
    warmup = S.LinearLR(opt, start_factor=0.1, total_iters=5)
    cosine = S.CosineAnnealingLR(opt, T_max=20)
    return S.SequentialLR(opt, [warmup, cosine], milestones=[5])


def test_warmup_then_cosine():
    sequence = lr_sequence(warmup_then_cosine(make_optimizer()), 25)
    for t, lrs in enumerate(sequence):
        if t < 5:
            want = [b * (0.1 + 0.9 * t / 5) for b in BASE_LRS]
        else:
            want = [b * (1 + math.cos(math.pi * (t - 5) / 20)) / 2 for b in BASE_LRS]
        np.testing.assert_allclose(lrs, want, rtol=1e-9, atol=1e-15)


def test_sequential_matches_torch():
    torch, topt = torch_twin()
    T = torch.optim.lr_scheduler
    theirs = T.SequentialLR(
        topt,
        [T.LinearLR(topt, start_factor=0.1, total_iters=5), T.CosineAnnealingLR(topt, T_max=20)],
        milestones=[5],
    )
    ours = warmup_then_cosine(make_optimizer())
    np.testing.assert_allclose(lr_sequence(ours), torch_sequence(theirs), rtol=1e-12, atol=1e-15)


def test_sequential_validates():
    opt, other = make_optimizer(), make_optimizer()
    step = S.StepLR(opt, 3)
    with pytest.raises(ValueError, match="milestones"):
        S.SequentialLR(opt, [step, S.ExponentialLR(opt, 0.9)], milestones=[])
    with pytest.raises(ValueError, match="another optimizer"):
        S.SequentialLR(opt, [step, S.ExponentialLR(other, 0.9)], milestones=[4])
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        S.SequentialLR(opt, [step, S.ReduceLROnPlateau(opt)], milestones=[4])


# --------------------------------------------------------------------- OneCycleLR
def one_cycle_closed_form(t, max_lr, total, pct=0.3, div=25.0, final_div=1e4, lo=0.85, hi=0.95):
    """(lr, momentum) of the two-phase cosine 1cycle policy at step t."""
    initial, peak_step = max_lr / div, pct * total - 1

    def cos_anneal(start, end, frac):
        return end + (start - end) * (1 + math.cos(math.pi * frac)) / 2

    if t <= peak_step:
        frac = t / peak_step
        return cos_anneal(initial, max_lr, frac), cos_anneal(hi, lo, frac)
    frac = (t - peak_step) / (total - 1 - peak_step)
    return cos_anneal(max_lr, initial / final_div, frac), cos_anneal(lo, hi, frac)


def test_one_cycle_follows_its_closed_form_and_cycles_momentum():
    opt = make_optimizer()
    sched = S.OneCycleLR(opt, max_lr=[1.0, 0.5], total_steps=50)
    for t in range(50):
        for group, max_lr in zip(opt.param_groups, (1.0, 0.5)):
            lr, momentum = one_cycle_closed_form(t, max_lr, 50)
            assert group["lr"] == pytest.approx(lr, rel=1e-12)
            assert group["momentum"] == pytest.approx(momentum, rel=1e-12)
        if t < 49:
            opt.step()
            sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0 / 25 / 1e4)
    sched.step()  # step 50 is the last allowed (as in PyTorch)
    with pytest.raises(ValueError, match="total_steps"):
        sched.step()


ONE_CYCLE_VARIANTS = [
    ("SGD", dict(max_lr=0.5, total_steps=45)),
    ("SGD", dict(max_lr=[0.5, 0.2], epochs=5, steps_per_epoch=9, anneal_strategy="linear")),
    ("SGD", dict(max_lr=0.5, total_steps=45, three_phase=True, pct_start=0.25)),
    ("Adam", dict(max_lr=0.01, total_steps=45, base_momentum=0.8, max_momentum=0.9)),
    ("Adam", dict(max_lr=0.01, total_steps=45, cycle_momentum=False, div_factor=10.0)),
]


@pytest.mark.parametrize(("kind", "kwargs"), ONE_CYCLE_VARIANTS)
def test_one_cycle_matches_torch(kind, kwargs):
    torch, topt = torch_twin(kind)
    opt = make_optimizer(kind)
    ours = S.OneCycleLR(opt, **kwargs)
    theirs = torch.optim.lr_scheduler.OneCycleLR(topt, **kwargs)
    key = "betas" if kind == "Adam" else "momentum"
    for _ in range(44):
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12)
        for g, tg in zip(opt.param_groups, topt.param_groups):
            np.testing.assert_allclose(g[key], tg[key], rtol=1e-12)
        opt.step()
        topt.step()
        ours.step()
        theirs.step()


def test_one_cycle_validates():
    opt = make_optimizer()
    with pytest.raises(ValueError, match="total_steps"):
        S.OneCycleLR(opt, max_lr=0.1)
    with pytest.raises(ValueError, match="pct_start"):
        S.OneCycleLR(opt, max_lr=0.1, total_steps=10, pct_start=1.5)
    with pytest.raises(ValueError, match="anneal_strategy"):
        S.OneCycleLR(opt, max_lr=0.1, total_steps=10, anneal_strategy="exp")
    with pytest.raises(ValueError, match="2 param groups"):
        S.OneCycleLR(opt, max_lr=[0.1], total_steps=10)
    adagrad = optim.Adagrad([Parameter(minidl.zeros(1))])
    with pytest.raises(ValueError, match="momentum or betas"):
        S.OneCycleLR(adagrad, max_lr=0.1, total_steps=10)


# --------------------------------------------------------------------- ReduceLROnPlateau
def test_plateau_reduces_after_patience_then_cools_down():
    opt = make_optimizer(lrs=(1.0,))
    sched = S.ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, min_lr=0.2)
    metrics = [5, 4] + [4] * 12
    lrs = []
    for m in metrics:
        sched.step(m)
        lrs.append(sched.get_last_lr()[0])
    # epochs 3-5 are bad: reduced after the third; epoch 6 is the cooldown; 7-9 bad:
    # reduced; 10 cooldown; 11-13 bad: reduced to the floor min_lr = 0.2, not 0.125
    assert lrs == [1.0] * 4 + [0.5] * 4 + [0.25] * 4 + [0.2] * 2
    assert sched.best == 4


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(mode="max", patience=1),
        dict(threshold_mode="abs", threshold=0.05, patience=2, cooldown=2, factor=0.3),
        dict(mode="max", threshold_mode="abs", threshold=0.1, patience=0, min_lr=[0.01, 0.02]),
    ],
)
def test_plateau_matches_torch(kwargs):
    torch, topt = torch_twin()
    opt = make_optimizer()
    ours = S.ReduceLROnPlateau(opt, **kwargs)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    metrics = np.random.default_rng(3).normal(1.0, 0.2, size=60).round(2)
    for m in metrics:
        ours.step(m)
        theirs.step(m)
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)
        assert ours.num_bad_epochs == theirs.num_bad_epochs


def test_plateau_validates_and_accepts_a_tensor_metric():
    with pytest.raises(ValueError, match="factor"):
        S.ReduceLROnPlateau(make_optimizer(), factor=1.0)
    with pytest.raises(ValueError, match="mode"):
        S.ReduceLROnPlateau(make_optimizer(), mode="up")
    with pytest.raises(ValueError, match="threshold_mode"):
        S.ReduceLROnPlateau(make_optimizer(), threshold_mode="log")
    sched = S.ReduceLROnPlateau(make_optimizer())
    sched.step(minidl.tensor(0.5))
    assert sched.best == 0.5


# --------------------------------------------------------------------- state dicts
RESUMABLE = {
    "StepLR": lambda opt: S.StepLR(opt, step_size=4, gamma=0.5),
    "CosineAnnealingLR": lambda opt: S.CosineAnnealingLR(opt, T_max=12, eta_min=0.01),
    "OneCycleLR": lambda opt: S.OneCycleLR(opt, max_lr=0.5, total_steps=30),
    "SequentialLR": warmup_then_cosine,
    "MultiStepLR": lambda opt: S.MultiStepLR(opt, milestones=[3, 9]),
    "CosineAnnealingWarmRestarts": lambda opt: S.CosineAnnealingWarmRestarts(opt, 3, 2),
    "CyclicLR": lambda opt: S.CyclicLR(opt, 0.01, 0.1, step_size_up=3, mode="triangular2"),
    "PolynomialLR": lambda opt: S.PolynomialLR(opt, total_iters=15, power=0.5),
    "ConstantLR": lambda opt: S.ConstantLR(opt, factor=0.5, total_iters=10),
}


@pytest.mark.parametrize("name", list(RESUMABLE))
def test_state_dict_round_trip_resumes_identically(name):
    factory = RESUMABLE[name]
    straight = lr_sequence(factory(make_optimizer()), 20)
    opt = make_optimizer()
    sched = factory(opt)
    lr_sequence(sched, 8)
    saved_opt, saved_sched = copy.deepcopy(opt.state_dict()), copy.deepcopy(sched.state_dict())
    assert "optimizer" not in saved_sched
    # Restore as PyTorch documents: build the scheduler, then load both state dicts.
    opt2 = make_optimizer()
    sched2 = factory(opt2)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    resumed = lr_sequence(sched2, 12)
    np.testing.assert_allclose(resumed, straight[8:], rtol=1e-12)


def test_plateau_state_dict_round_trip():
    opt = make_optimizer()
    sched = S.ReduceLROnPlateau(opt, patience=1)
    for m in (3.0, 2.0, 2.5):
        sched.step(m)
    sched2 = S.ReduceLROnPlateau(make_optimizer(), patience=1)
    sched2.load_state_dict(copy.deepcopy(sched.state_dict()))
    assert (sched2.best, sched2.num_bad_epochs, sched2.last_epoch) == (2.0, 1, 3)


def test_lambda_state_dict_saves_callable_objects_not_functions():
    class Decay:
        def __init__(self, rate):
            self.rate = rate

        def __call__(self, epoch):
            return self.rate**epoch

    opt = make_optimizer()
    sched = S.LambdaLR(opt, [Decay(0.5), lambda epoch: 1.0])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [{"rate": 0.5}, None]
    other = S.LambdaLR(make_optimizer(), [Decay(0.9), lambda epoch: 1.0])
    other.load_state_dict(state)
    assert other.lr_lambdas[0].rate == 0.5


NEW_SCHEDULES = {
    "ConstantLR": dict(factor=0.5, total_iters=4),
    "PolynomialLR": dict(total_iters=9, power=1.5),
    "MultiplicativeLR": dict(lr_lambda=lambda epoch: 0.9),
    "CosineAnnealingWarmRestarts": dict(T_0=3, T_mult=2, eta_min=0.001),
    "CyclicLR": dict(base_lr=0.01, max_lr=0.1, step_size_up=3, mode="triangular2"),
}


@pytest.mark.parametrize("name", list(NEW_SCHEDULES))
def test_state_dict_is_torchs_and_a_torch_one_resumes_here(name):
    """The same keys as PyTorch's state dict (but its internal re-entrancy flag), and a
    PyTorch scheduler's state dict, loaded here mid-run, continues as PyTorch does."""
    torch, topt = torch_twin()
    theirs = getattr(torch.optim.lr_scheduler, name)(topt, **NEW_SCHEDULES[name])
    lr_sequence(theirs, 7)
    ours = getattr(S, name)(make_optimizer(), **NEW_SCHEDULES[name])
    their_state = theirs.state_dict()
    assert set(ours.state_dict()) == set(their_state) - {"_get_lr_called_within_step"}
    ours.optimizer.load_state_dict(
        {"state": {}, "param_groups": copy.deepcopy(topt.state_dict()["param_groups"])}
    )
    ours.load_state_dict(
        {k: v for k, v in their_state.items() if k != "_get_lr_called_within_step"}
    )
    np.testing.assert_allclose(lr_sequence(ours, 15), torch_sequence(theirs, 15), rtol=1e-12)
