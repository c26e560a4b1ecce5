"""Optimizers: each update rule against the same rule written out in NumPy, against
PyTorch (same start, same gradients, same parameters after 10 steps), state-dict round
trips, parameter groups, validation, and minimisation of Rosenbrock's function.

Every test runs on the CPU and on the simulated CUDA device."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from devices import device  # noqa: F401  (each test on CPU and simulated CUDA)
from hypothesis import given
from hypothesis import strategies as st

import minidl
from minidl import optim
from minidl.nn import Parameter


# --------------------------------------------------------------------- NumPy references
# Each takes the initial parameter and the gradient sequence and returns the parameters
# after every step, following the algorithm boxes of PyTorch's documentation.
def sgd_ref(
    p, grads, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False
):
    b, out = None, []
    for g in grads:
        g = -g if maximize else g
        g = g + weight_decay * p
        if momentum != 0:
            b = g.copy() if b is None else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        p = p - lr * g
        out.append(p)
    return out


def adam_ref(
    p,
    grads,
    lr=1e-3,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0,
    amsgrad=False,
    maximize=False,
    decoupled=False,
):
    b1, b2 = betas
    m = v = v_max = np.zeros_like(p)
    out = []
    for t, g in enumerate(grads, start=1):
        g = -g if maximize else g
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        if amsgrad:
            v_max = np.maximum(v_max, v)
            v_hat = v_max / (1 - b2**t)
        else:
            v_hat = v / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(p)
    return out


def adamw_ref(p, grads, weight_decay=1e-2, **kwargs):
    return adam_ref(p, grads, weight_decay=weight_decay, decoupled=True, **kwargs)


def rmsprop_ref(
    p,
    grads,
    lr=1e-2,
    alpha=0.99,
    eps=1e-8,
    weight_decay=0,
    momentum=0,
    centered=False,
    maximize=False,
):
    v = a = b = np.zeros_like(p)
    out = []
    for g in grads:
        g = -g if maximize else g
        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        v_tilde = v
        if centered:
            a = alpha * a + (1 - alpha) * g
            v_tilde = v - a * a
        if momentum > 0:
            b = momentum * b + g / (np.sqrt(v_tilde) + eps)
            p = p - lr * b
        else:
            p = p - lr * g / (np.sqrt(v_tilde) + eps)
        out.append(p)
    return out


def adagrad_ref(
    p,
    grads,
    lr=1e-2,
    lr_decay=0,
    weight_decay=0,
    initial_accumulator_value=0,
    eps=1e-10,
    maximize=False,
):
    s = np.full_like(p, initial_accumulator_value)
    out = []
    for t, g in enumerate(grads, start=1):
        g = -g if maximize else g
        g = g + weight_decay * p
        lr_t = lr / (1 + (t - 1) * lr_decay)
        s = s + g * g
        p = p - lr_t * g / (np.sqrt(s) + eps)
        out.append(p)
    return out


def adamax_ref(p, grads, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, maximize=False):
    b1, b2 = betas
    m = u = np.zeros_like(p)
    out = []
    for t, g in enumerate(grads, start=1):
        g = (-g if maximize else g) + weight_decay * p
        m = b1 * m + (1 - b1) * g
        u = np.maximum(b2 * u, np.abs(g) + eps)
        p = p - lr / (1 - b1**t) * m / u
        out.append(p)
    return out


def nadam_ref(
    p,
    grads,
    lr=2e-3,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0,
    momentum_decay=4e-3,
    decoupled_weight_decay=False,
    maximize=False,
):
    """Dozat's NAdam as written in PyTorch's algorithm box."""
    b1, b2 = betas
    m = v = np.zeros_like(p)
    product, out = 1.0, []
    for t, g in enumerate(grads, start=1):
        g = -g if maximize else g
        if decoupled_weight_decay:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        mu = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        product *= mu
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        v_hat = v / (1 - b2**t)
        step = mu_next * m / (1 - product * mu_next) + (1 - mu) * g / (1 - product)
        p = p - lr * step / (np.sqrt(v_hat) + eps)
        out.append(p)
    return out


def radam_ref(
    p,
    grads,
    lr=1e-3,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0,
    decoupled_weight_decay=False,
    maximize=False,
):
    b1, b2 = betas
    m = v = np.zeros_like(p)
    rho_inf = 2 / (1 - b2) - 1
    out = []
    for t, g in enumerate(grads, start=1):
        g = -g if maximize else g
        if decoupled_weight_decay:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho_t > 5:
            length = np.sqrt(1 - b2**t) / (np.sqrt(v) + eps)
            r = np.sqrt(
                (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            )
            p = p - lr * m_hat * length * r
        else:
            p = p - lr * m_hat
        out.append(p)
    return out


def adadelta_ref(p, grads, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, maximize=False):
    v = u = np.zeros_like(p)
    out = []
    for g in grads:
        g = (-g if maximize else g) + weight_decay * p
        v = rho * v + (1 - rho) * g * g
        delta = np.sqrt(u + eps) / np.sqrt(v + eps) * g
        u = rho * u + (1 - rho) * delta * delta
        p = p - lr * delta
        out.append(p)
    return out


REFERENCES = {
    "Adamax": adamax_ref,
    "NAdam": nadam_ref,
    "RAdam": radam_ref,
    "Adadelta": adadelta_ref,
    "SGD": sgd_ref,
    "Adam": adam_ref,
    "AdamW": adamw_ref,
    "RMSprop": rmsprop_ref,
    "Adagrad": adagrad_ref,
}

VARIANTS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05)),
    ("SGD", dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("Adam", dict(lr=0.05, amsgrad=True, weight_decay=0.02, maximize=True)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.3, amsgrad=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, alpha=0.9, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.005, momentum=0.5, centered=True, weight_decay=0.05, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5, eps=1e-6, maximize=True)),
    ("SGD", dict(lr=0.1, momentum=0.5, foreach=True)),
    ("Adam", dict(lr=0.05, foreach=False, maximize=True)),
    ("Adamax", dict()),
    ("Adamax", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-4, weight_decay=0.1, maximize=True)),
    ("NAdam", dict()),
    ("NAdam", dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.1, momentum_decay=0.01)),
    ("NAdam", dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", dict()),
    ("RAdam", dict(lr=0.05, betas=(0.5, 0.7), weight_decay=0.1)),  # rho_t > 5 from step 4
    ("RAdam", dict(lr=0.05, betas=(0.9, 0.8), weight_decay=0.1, decoupled_weight_decay=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1, maximize=True)),
]
IDS = [f"{name}-{kwargs}" for name, kwargs in VARIANTS]
SHAPES = [(3, 4), (5,)]


def problem(steps: int, dtype=np.float64, seed: int = 0):
    """Initial values and a gradient sequence for two parameters of different shapes."""
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]
    return init, grads


def run_minidl(name, kwargs, init, grads):
    # a.copy(): the simulated device's host-to-device move may share memory with `a`
    params = [Parameter(minidl.tensor(a.copy())) for a in init]
    opt = getattr(optim, name)(params, **kwargs)
    history = []
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = minidl.tensor(g)
        opt.step()
        history.append([p.numpy().copy() for p in params])
    return history, params, opt


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS, ids=IDS)
def test_matches_update_rule_written_in_numpy(name, kwargs):
    init, grads = problem(steps=8)
    history, _, _ = run_minidl(name, kwargs, init, grads)
    for i, a in enumerate(init):
        rule = {k: v for k, v in kwargs.items() if k != "foreach"}  # foreach changes nothing
        expected = REFERENCES[name](a, [gs[i] for gs in grads], **rule)
        for step, want in enumerate(expected):
            np.testing.assert_allclose(history[step][i], want, rtol=1e-10, atol=1e-12)


def hyper_parameters(name: str) -> st.SearchStrategy[dict]:
    """Valid hyper-parameters of optimizer ``name``, over their whole ranges."""
    lr, decay, small = st.floats(1e-4, 1.0), st.floats(0.0, 0.5), st.floats(1e-10, 1e-3)
    common = {"weight_decay": decay, "maximize": st.booleans()}
    if name == "SGD":
        plain = st.fixed_dictionaries(
            {"lr": lr, "momentum": st.floats(0, 0.99), "dampening": st.floats(0, 0.9), **common}
        )
        nesterov = st.fixed_dictionaries(
            {"lr": lr, "momentum": st.floats(0.1, 0.99), "nesterov": st.just(True), **common}
        )
        return plain | nesterov
    if name in ("Adam", "AdamW"):
        betas = st.tuples(st.floats(0.0, 0.99), st.floats(0.5, 0.9999))
        return st.fixed_dictionaries(
            {"lr": lr, "betas": betas, "eps": small, "amsgrad": st.booleans(), **common}
        )
    if name in ("Adamax", "NAdam", "RAdam"):
        betas = st.tuples(st.floats(0.0, 0.99), st.floats(0.5, 0.9999))
        extra = {} if name == "Adamax" else {"decoupled_weight_decay": st.booleans()}
        if name == "NAdam":
            extra["momentum_decay"] = st.floats(0.0, 0.05)
        return st.fixed_dictionaries({"lr": lr, "betas": betas, "eps": small, **extra, **common})
    if name == "Adadelta":
        return st.fixed_dictionaries(
            {"lr": lr, "rho": st.floats(0.0, 0.99), "eps": st.floats(1e-8, 1e-3), **common}
        )
    if name == "RMSprop":
        return st.fixed_dictionaries(
            {
                "lr": st.floats(1e-4, 0.1),
                "alpha": st.floats(0.5, 0.999),
                "eps": small,
                "momentum": st.floats(0, 0.95),
                "centered": st.booleans(),
                **common,
            }
        )
    return st.fixed_dictionaries(
        {
            "lr": lr,
            "lr_decay": st.floats(0, 1),
            "initial_accumulator_value": st.floats(0, 1),
            "eps": small,
            **common,
        }
    )


@given(data=st.data(), name=st.sampled_from(sorted(REFERENCES)), seed=st.integers(0, 999))
def test_random_hyper_parameters_follow_the_update_rule(data, name, seed):
    kwargs = data.draw(hyper_parameters(name))
    init, grads = problem(steps=5, seed=seed)
    history, _, _ = run_minidl(name, kwargs, init, grads)
    for i, a in enumerate(init):
        want = REFERENCES[name](a, [gs[i] for gs in grads], **kwargs)[-1]
        np.testing.assert_allclose(history[-1][i], want, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "kwargs"), VARIANTS, ids=IDS)
def test_matches_torch_after_10_steps(name, kwargs, dtype):
    torch = pytest.importorskip("torch")
    init, grads = problem(steps=10, dtype=dtype, seed=1)
    history, _, _ = run_minidl(name, kwargs, init, grads)
    params = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    opt = getattr(torch.optim, name)(params, **kwargs)
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = torch.tensor(g)
        opt.step()
    for ours, theirs in zip(history[-1], params):
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize(("name", "kwargs"), VARIANTS, ids=IDS)
def test_state_dict_round_trip_resumes_identically(name, kwargs):
    init, grads = problem(steps=8)
    straight, _, _ = run_minidl(name, kwargs, init, grads)
    # Train 4 steps, save, and resume in a fresh optimizer on fresh parameters.
    _, params, opt = run_minidl(name, kwargs, init, grads[:4])
    saved = copy.deepcopy(opt.state_dict())
    fresh = [Parameter(minidl.tensor(p.numpy())) for p in params]
    resumed = getattr(optim, name)(fresh, lr=123.0)  # the saved lr must win
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    for step, gs in enumerate(grads[4:], start=4):
        for p, g in zip(fresh, gs):
            p.grad = minidl.tensor(g)
        resumed.step()
        for p, want in zip(fresh, straight[step]):
            np.testing.assert_array_equal(p.numpy(), want)


def test_state_dict_layout_is_pytorchs():
    a, b, c = (Parameter(minidl.zeros(2)) for _ in range(3))
    opt = optim.Adam([{"params": [a, b]}, {"params": [c], "lr": 0.1}], amsgrad=True)
    for p in (a, c):
        p.grad = minidl.ones(2)
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert [g["lr"] for g in sd["param_groups"]] == [1e-3, 0.1]
    assert sorted(sd["state"]) == [0, 2]  # b had no gradient, so no state
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert sd["state"][0]["step"] == 1
    np.testing.assert_allclose(sd["state"][2]["exp_avg"].numpy(), [0.1, 0.1], rtol=1e-6)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("SGD", dict(lr=0.1, momentum=0.9)),
        ("Adam", dict(lr=0.05, amsgrad=True)),
        ("RMSprop", dict(momentum=0.5, centered=True)),
        ("Adagrad", dict(lr_decay=0.1)),
        ("Adamax", dict(lr=0.05)),
        ("NAdam", dict(lr=0.05, weight_decay=0.1)),
        ("RAdam", dict(lr=0.05)),
        ("Adadelta", dict(rho=0.8)),
    ],
)
def test_loads_a_torch_state_dict_converted_to_numpy(name, kwargs):
    torch = pytest.importorskip("torch")
    init, grads = problem(steps=8, seed=2)
    tparams = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    topt = getattr(torch.optim, name)(tparams, **kwargs)

    def torch_steps(gradients):
        for gs in gradients:
            for p, g in zip(tparams, gs):
                p.grad = torch.tensor(g)
            topt.step()

    torch_steps(grads[:4])
    as_numpy = {
        "state": {
            k: {n: v.numpy().copy() if torch.is_tensor(v) else v for n, v in s.items()}
            for k, s in topt.state_dict()["state"].items()
        },
        "param_groups": copy.deepcopy(topt.state_dict()["param_groups"]),
    }
    params = [Parameter(minidl.tensor(p.detach().numpy())) for p in tparams]
    opt = getattr(optim, name)(params)
    opt.load_state_dict(as_numpy)
    torch_steps(grads[4:])
    for gs in grads[4:]:
        for p, g in zip(params, gs):
            p.grad = minidl.tensor(g)
        opt.step()
    for ours, theirs in zip(params, tparams):
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), atol=1e-12)


def _torch_to_numpy(value):
    import torch

    if torch.is_tensor(value):
        return value.numpy().copy()
    if isinstance(value, list):
        return [_torch_to_numpy(v) for v in value]
    return value


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("SGD", dict(momentum=0.9)),
        ("Adam", dict(amsgrad=True)),
        ("Adamax", dict()),
        ("NAdam", dict()),
        ("RAdam", dict()),
        ("Adadelta", dict()),
    ],
)
def test_state_dict_keys_are_torchs(name, kwargs):
    torch = pytest.importorskip("torch")
    init, grads = problem(steps=2, seed=4)
    _, _, opt = run_minidl(name, kwargs, init, grads)
    tparams = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    topt = getattr(torch.optim, name)(tparams, **kwargs)
    for gs in grads:
        for p, g in zip(tparams, gs):
            p.grad = torch.tensor(g)
        topt.step()
    ours, theirs = opt.state_dict(), topt.state_dict()
    assert sorted(ours["state"]) == sorted(theirs["state"])
    for k in ours["state"]:
        assert set(ours["state"][k]) == set(theirs["state"][k])
        for n, v in ours["state"][k].items():
            want = _torch_to_numpy(theirs["state"][k][n])
            got = v.numpy() if isinstance(v, minidl.Tensor) else v
            np.testing.assert_allclose(got, want, rtol=1e-6)  # torch keeps scalars in float32
    # every hyper-parameter we keep is one of PyTorch's, with the same default
    for group, tgroup in zip(ours["param_groups"], theirs["param_groups"]):
        assert set(group) <= set(tgroup)
        assert {k: group[k] for k in group} == {k: tgroup[k] for k in group}


@pytest.mark.parametrize(
    ("saver", "loader", "missing"),
    [("SGD", "Adam", "betas"), ("Adam", "SGD", "momentum"), ("RMSprop", "Adadelta", "rho")],
)
def test_refuses_another_optimizers_state_naming_both(saver, loader, missing):
    init, grads = problem(steps=2)
    _, params, opt = run_minidl(saver, dict(momentum=0.9) if saver == "SGD" else {}, init, grads)
    other = getattr(optim, loader)(params)
    with pytest.raises(ValueError, match=f"{loader}.load_state_dict.*{saver}'s.*{missing}"):
        other.load_state_dict(opt.state_dict())


# --------------------------------------------------------------------- LBFGS
def rosenbrock(xy):
    x, y = xy[0], xy[1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def _least_squares(seed=0, dtype=np.float64):
    """A small ill-conditioned least-squares problem and a closure factory."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((12, 5)) * np.array([1, 3, 0.3, 10, 1])
    b = rng.standard_normal(12)
    x0 = rng.standard_normal(5)
    w0 = rng.standard_normal(3)
    return a.astype(dtype), b.astype(dtype), x0.astype(dtype), w0.astype(dtype)


def _lbfgs_minidl(kwargs, steps, dtype=np.float64):
    a, b, x0, w0 = _least_squares(dtype=dtype)
    x, w = Parameter(minidl.tensor(x0.copy())), Parameter(minidl.tensor(w0.copy()))
    A, B = minidl.tensor(a), minidl.tensor(b)
    opt = optim.LBFGS([x, w], **kwargs)

    def closure():
        opt.zero_grad()
        r = A @ x - B
        loss = (r * r).sum() + ((w - 1.0) ** 4).sum() + (x[:3] * w).sum() ** 2
        loss.backward()
        return loss

    losses = [opt.step(closure).item() for _ in range(steps)]
    return [x.numpy(), w.numpy()], losses, opt


def _lbfgs_torch(torch, kwargs, steps, dtype=np.float64):
    a, b, x0, w0 = _least_squares(dtype=dtype)
    x, w = torch.nn.Parameter(torch.tensor(x0)), torch.nn.Parameter(torch.tensor(w0))
    A, B = torch.tensor(a), torch.tensor(b)
    opt = torch.optim.LBFGS([x, w], **kwargs)

    def closure():
        opt.zero_grad()
        r = A @ x - B
        loss = (r * r).sum() + ((w - 1.0) ** 4).sum() + (x[:3] * w).sum() ** 2
        loss.backward()
        return loss

    losses = [opt.step(closure).item() for _ in range(steps)]
    return [x.detach().numpy(), w.detach().numpy()], losses, opt


LBFGS_VARIANTS = [
    dict(lr=0.5, max_iter=4),
    dict(lr=1, max_iter=5, history_size=3, line_search_fn="strong_wolfe"),
    dict(lr=0.8, max_iter=20, line_search_fn="strong_wolfe", tolerance_change=1e-12),
]


@pytest.mark.parametrize("kwargs", LBFGS_VARIANTS, ids=str)
def test_lbfgs_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    ours, our_losses, opt = _lbfgs_minidl(kwargs, steps=10)
    theirs, their_losses, topt = _lbfgs_torch(torch, kwargs, steps=10)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    np.testing.assert_allclose(our_losses, their_losses, rtol=1e-6, atol=1e-9)
    state, tstate = opt.state_dict()["state"][0], topt.state_dict()["state"][0]
    assert set(state) == set(tstate)
    assert (state["func_evals"], state["n_iter"]) == (tstate["func_evals"], tstate["n_iter"])


def _far_quadratic(v):
    return ((v - 1000.0) ** 2).sum()


def _flat_valley(v):
    return ((v**2).sum() + 1).log() + 0.01 * (v**2).sum()


# (loss, start, LBFGS arguments): together they take every branch of the line search
# but the zoom's stop on a bracket narrower than tolerance_change (found by tracing)
LINE_SEARCH_CASES = [
    (rosenbrock, [-1.5, 2.0], dict(lr=1.0, max_iter=6, history_size=5)),  # zoom
    (rosenbrock, [-1.5, 2.0], dict(lr=0.3, max_iter=6, history_size=5)),
    (rosenbrock, [-1.5, 2.0], dict(lr=10.0, max_iter=6)),  # overshoots: the loss rises
    (rosenbrock, [-1.5, 2.0], dict(lr=100.0, max_iter=6)),
    (_far_quadratic, [0.0, 0.0], dict(lr=1e-3, max_iter=3, max_eval=3)),  # tries run out
    (_flat_valley, [3.0, -2.0], dict(lr=30.0, max_iter=20)),  # steps kept off the ends
]


@pytest.mark.parametrize(("loss_fn", "start", "kwargs"), LINE_SEARCH_CASES)
def test_lbfgs_line_search_matches_torch(loss_fn, start, kwargs):
    torch = pytest.importorskip("torch")
    kwargs = {**kwargs, "line_search_fn": "strong_wolfe"}
    xy = Parameter(minidl.tensor(np.array(start)))
    txy = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    opt, topt = optim.LBFGS([xy], **kwargs), torch.optim.LBFGS([txy], **kwargs)

    def closure():
        opt.zero_grad()
        loss = loss_fn(xy)
        loss.backward()
        return loss

    def torch_closure():
        topt.zero_grad()
        loss = loss_fn(txy)
        loss.backward()
        return loss

    for _ in range(10):
        opt.step(closure)
        topt.step(torch_closure)
        np.testing.assert_allclose(xy.numpy(), txy.detach().numpy(), rtol=0, atol=1e-6)
    assert opt.state[xy]["func_evals"] == topt.state[txy]["func_evals"]


def test_lbfgs_with_line_search_minimises_rosenbrock():
    xy = Parameter(minidl.tensor([-1.5, 2.0], dtype=minidl.float64))
    opt = optim.LBFGS([xy], line_search_fn="strong_wolfe", max_iter=100)

    def closure():
        opt.zero_grad()
        loss = rosenbrock(xy)
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
    np.testing.assert_allclose(xy.numpy(), [1.0, 1.0], atol=1e-5)


def test_lbfgs_state_dict_round_trip_resumes_identically():
    straight, _, _ = _lbfgs_minidl(dict(max_iter=3, line_search_fn="strong_wolfe"), 6)
    a, b, _, _ = _least_squares()
    _, _, opt = _lbfgs_minidl(dict(max_iter=3, line_search_fn="strong_wolfe"), 3)
    saved = copy.deepcopy(opt.state_dict())
    x, w = (Parameter(minidl.tensor(p.numpy().copy())) for p in opt.param_groups[0]["params"])
    resumed = optim.LBFGS([x, w], max_iter=3, line_search_fn="strong_wolfe")
    resumed.load_state_dict(saved)
    A, B = minidl.tensor(a), minidl.tensor(b)

    def closure():
        resumed.zero_grad()
        r = A @ x - B
        loss = (r * r).sum() + ((w - 1.0) ** 4).sum() + (x[:3] * w).sum() ** 2
        loss.backward()
        return loss

    for _ in range(3):
        resumed.step(closure)
    np.testing.assert_array_equal(x.numpy(), straight[0])
    np.testing.assert_array_equal(w.numpy(), straight[1])


def test_lbfgs_loads_a_torch_state_dict_converted_to_numpy():
    torch = pytest.importorskip("torch")
    kwargs = dict(max_iter=3, history_size=4, line_search_fn="strong_wolfe")
    _, _, topt = _lbfgs_torch(torch, kwargs, steps=2)
    tstate = topt.state_dict()
    as_numpy = {
        "state": {
            k: {n: _torch_to_numpy(v) for n, v in s.items()} for k, s in tstate["state"].items()
        },
        "param_groups": copy.deepcopy(tstate["param_groups"]),
    }
    x, w = (
        Parameter(minidl.tensor(p.detach().numpy().copy())) for p in topt.param_groups[0]["params"]
    )
    opt = optim.LBFGS([x, w], **kwargs)
    opt.load_state_dict(as_numpy)
    a, b, _, _ = _least_squares()
    A, B = minidl.tensor(a), minidl.tensor(b)

    def closure():
        opt.zero_grad()
        r = A @ x - B
        loss = (r * r).sum() + ((w - 1.0) ** 4).sum() + (x[:3] * w).sum() ** 2
        loss.backward()
        return loss

    tx, tw = topt.param_groups[0]["params"]
    tA, tB = torch.tensor(a), torch.tensor(b)

    def torch_closure():
        topt.zero_grad()
        r = tA @ tx - tB
        loss = (r * r).sum() + ((tw - 1.0) ** 4).sum() + (tx[:3] * tw).sum() ** 2
        loss.backward()
        return loss

    for _ in range(3):
        opt.step(closure)
        topt.step(torch_closure)
    np.testing.assert_allclose(x.numpy(), tx.detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), atol=1e-6)


def test_lbfgs_validates():
    p = Parameter(minidl.ones(2))
    with pytest.raises(ValueError, match="line_search_fn"):
        optim.LBFGS([p], line_search_fn="armijo")
    with pytest.raises(ValueError, match="max_iter"):
        optim.LBFGS([p], max_iter=0)
    with pytest.raises(ValueError, match="parameter groups"):
        optim.LBFGS([{"params": [p]}, {"params": [Parameter(minidl.ones(1))]}])
    with pytest.raises(ValueError, match="closure"):
        optim.LBFGS([p]).step()


# --------------------------------------------------------------------- groups and API
def test_param_groups_use_their_own_hyper_parameters():
    a, b = Parameter(minidl.ones(3)), Parameter(minidl.ones(3))
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 0.5}], lr=0.1, momentum=0.0)
    assert opt.param_groups[1]["momentum"] == 0.0 and opt.param_groups[0]["lr"] == 0.1
    a.grad, b.grad = minidl.ones(3), minidl.ones(3)
    opt.step()
    np.testing.assert_allclose(a.numpy(), 0.9, rtol=1e-6)
    np.testing.assert_allclose(b.numpy(), 0.5, rtol=1e-6)


def test_add_param_group_fills_defaults_and_rejects_duplicates():
    a, b = Parameter(minidl.ones(2)), Parameter(minidl.ones(2))
    opt = optim.Adam([a], lr=0.01, betas=(0.5, 0.6))
    opt.add_param_group({"params": [b], "lr": 0.2})
    assert opt.param_groups[1]["betas"] == (0.5, 0.6) and opt.param_groups[1]["lr"] == 0.2
    with pytest.raises(ValueError, match="more than once"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([a, a])


def test_rejects_bad_params():
    p = Parameter(minidl.ones(2))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([])
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(p)
    with pytest.raises(TypeError, match="ordered collection"):
        optim.SGD({p})
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        optim.SGD([np.ones(2)])
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2])


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("SGD", dict(lr=-0.1), "learning rate"),
        ("SGD", dict(momentum=-0.5), "momentum"),
        ("SGD", dict(weight_decay=-1), "weight_decay"),
        ("SGD", dict(nesterov=True), "Nesterov"),
        ("SGD", dict(nesterov=True, momentum=0.9, dampening=0.1), "Nesterov"),
        ("Adam", dict(lr=-1), "learning rate"),
        ("Adam", dict(eps=-1e-8), "eps"),
        ("Adam", dict(betas=(1.0, 0.999)), "beta1"),
        ("AdamW", dict(betas=(0.9, -0.1)), "beta2"),
        ("AdamW", dict(weight_decay=-0.1), "weight_decay"),
        ("RMSprop", dict(alpha=-0.9), "alpha"),
        ("RMSprop", dict(momentum=-1), "momentum"),
        ("Adagrad", dict(lr_decay=-1), "lr_decay"),
        ("Adagrad", dict(initial_accumulator_value=-1), "initial_accumulator_value"),
        ("Adamax", dict(betas=(0.9, 1.0)), "beta2"),
        ("NAdam", dict(momentum_decay=-0.1), "momentum_decay"),
        ("RAdam", dict(lr=-1e-3), "learning rate"),
        ("Adadelta", dict(rho=1.5), "rho"),
        ("LBFGS", dict(lr=-1), "learning rate"),
    ],
)
def test_invalid_hyper_parameters_raise_naming_them(name, kwargs, message):
    with pytest.raises(ValueError, match=f"{name}: .*{message}"):
        getattr(optim, name)([Parameter(minidl.ones(2))], **kwargs)


def test_invalid_group_hyper_parameters_raise_too():
    opt = optim.SGD([Parameter(minidl.ones(2))], lr=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        opt.add_param_group({"params": [Parameter(minidl.ones(2))], "lr": -1.0})


def test_defaults_are_pytorchs():
    p = [Parameter(minidl.ones(2))]
    assert optim.SGD(p).defaults["lr"] == 1e-3
    adam = optim.Adam(p).defaults
    assert (adam["lr"], adam["betas"], adam["eps"], adam["weight_decay"]) == (
        1e-3,
        (0.9, 0.999),
        1e-8,
        0,
    )
    assert optim.AdamW(p).defaults["weight_decay"] == 1e-2
    rms = optim.RMSprop(p).defaults
    assert (rms["lr"], rms["alpha"], rms["eps"]) == (1e-2, 0.99, 1e-8)
    ada = optim.Adagrad(p).defaults
    assert (ada["lr"], ada["eps"], ada["initial_accumulator_value"]) == (1e-2, 1e-10, 0)
    torch = pytest.importorskip("torch")
    tp = [torch.nn.Parameter(torch.ones(2))]
    for name in ("Adamax", "NAdam", "RAdam", "Adadelta", "LBFGS"):
        ours, theirs = getattr(optim, name)(p).defaults, getattr(torch.optim, name)(tp).defaults
        assert ours == {k: theirs[k] for k in ours}, name


def test_zero_grad_drops_or_zeroes_in_place():
    p = Parameter(minidl.ones(3))
    opt = optim.SGD([p], lr=0.1)
    p.grad = minidl.ones(3)
    grad = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is grad
    np.testing.assert_array_equal(p.grad.numpy(), 0)
    opt.zero_grad()
    assert p.grad is None


def test_parameters_without_grad_are_left_alone():
    a, b = Parameter(minidl.ones(2)), Parameter(minidl.ones(2))
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = minidl.ones(2)
    opt.step()
    np.testing.assert_array_equal(b.numpy(), 1)
    assert b not in opt.state and a in opt.state
    assert not np.allclose(a.numpy(), 1)


def test_step_does_not_change_the_gradient():
    p = Parameter(minidl.ones(3))
    opt = optim.Adam([p], lr=0.1, weight_decay=0.5, maximize=True)
    p.grad = minidl.tensor([1.0, -2.0, 3.0])
    opt.step()
    np.testing.assert_array_equal(p.grad.numpy(), [1.0, -2.0, 3.0])


def test_closure_runs_with_grad_and_returns_its_loss():
    p = Parameter(minidl.tensor([3.0]))
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with minidl.no_grad():
        loss = opt.step(closure)
    assert loss.item() == pytest.approx(9.0)
    np.testing.assert_allclose(p.numpy(), [1.5])  # 3 - 0.25 * 6


def test_step_bumps_the_version_so_a_stale_graph_refuses_backward():
    p = Parameter(minidl.tensor([1.0, 2.0]))
    opt = optim.SGD([p], lr=0.1)
    (p * p).sum().backward()
    stale = (p * p).sum()  # saved p's values for its backward
    opt.step()
    with pytest.raises(RuntimeError, match="modified in place"):
        stale.backward()


def test_repr_lists_each_group():
    opt = optim.SGD([Parameter(minidl.ones(1))], lr=0.5, momentum=0.9)
    text = repr(opt)
    assert text.startswith("SGD (") and "Parameter Group 0" in text and "momentum: 0.9" in text


# --------------------------------------------------------------------- minimisation
@pytest.mark.parametrize(
    ("name", "kwargs", "steps"),
    [
        ("Adam", dict(lr=0.02), 3000),
        ("SGD", dict(lr=1e-3, momentum=0.9), 4000),
        ("RMSprop", dict(lr=1e-3), 5000),
    ],
)
def test_minimises_rosenbrock(name, kwargs, steps):
    xy = Parameter(minidl.tensor([-1.5, 2.0], dtype=minidl.float64))
    opt = getattr(optim, name)([xy], **kwargs)
    start = rosenbrock(xy).item()
    for _ in range(steps):
        opt.zero_grad()
        rosenbrock(xy).backward()
        opt.step()
    assert rosenbrock(xy).item() < 1e-3 * start
    np.testing.assert_allclose(xy.numpy(), [1.0, 1.0], atol=0.1)


def test_adagrad_minimises_a_quadratic():
    target = minidl.tensor([1.0, -2.0, 3.0])
    w = Parameter(minidl.zeros(3))
    opt = optim.Adagrad([w], lr=0.5)
    for _ in range(300):
        opt.zero_grad()
        ((w - target) ** 2).sum().backward()
        opt.step()
    np.testing.assert_allclose(w.numpy(), target.numpy(), atol=1e-3)
