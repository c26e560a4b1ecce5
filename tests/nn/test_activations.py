"""The activations added for PyTorch parity (Hardtanh ... GLU): values and gradients
against PyTorch (kinks included), gradients over drawn shapes, identities, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from invariants import check_op
from strategies import seeds, shapes

import minidl as md
from minidl import nn
from minidl.nn import functional as F

rng = np.random.default_rng(0)
# random values plus every kink PyTorch fixes a derivative at
X = np.concatenate([rng.standard_normal(20) * 4, [-3, 3, 0, -1, 1, 6, -6, -0.5]]).reshape(4, 7)

LAYERS = [
    ("Hardtanh", {}),
    ("Hardtanh", {"min_val": -0.5, "max_val": 2.0}),
    ("ReLU6", {}),
    ("SiLU", {}),
    ("SELU", {}),
    ("CELU", {"alpha": 0.7}),
    ("Mish", {}),
    ("Hardswish", {}),
    ("Hardsigmoid", {}),
    ("PReLU", {}),
    ("PReLU", {"num_parameters": 7, "init": 0.1}),
    ("Softsign", {}),
    ("Tanhshrink", {}),
    ("LogSigmoid", {}),
    ("GLU", {"dim": 0}),
]


@pytest.mark.parametrize("name, kwargs", LAYERS)
def test_matches_torch_at_random_values_and_kinks(name, kwargs):
    torch = pytest.importorskip("torch")
    tlayer, mlayer = (
        getattr(torch.nn, name)(**kwargs).double(),
        getattr(nn, name)(**kwargs).double(),
    )
    assert repr(mlayer) == repr(tlayer)
    tx, mx = torch.tensor(X, requires_grad=True), md.tensor(X, requires_grad=True)
    tout, mout = tlayer(tx), mlayer(mx)
    np.testing.assert_allclose(mout.numpy(), tout.detach().numpy(), rtol=1e-12, atol=1e-14)
    g = rng.standard_normal(tout.shape)
    tout.backward(torch.tensor(g))
    mout.backward(md.tensor(g))
    # PyTorch rounds alpha and 1/6 through float32 in CELU's and Hardsigmoid's backward
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=1e-6, atol=1e-12)
    for p, q in zip(mlayer.parameters(), tlayer.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-12)


FUNCTIONS = {
    "hardtanh": lambda x: F.hardtanh(x, -0.7, 1.3),
    "relu6": lambda x: F.relu6(x * 3),
    "silu": F.silu,
    "selu": F.selu,
    "celu": lambda x: F.celu(x, 0.6),
    "mish": F.mish,
    "hardswish": lambda x: F.hardswish(x * 3),
    "hardsigmoid": lambda x: F.hardsigmoid(x * 3),
    "softsign": F.softsign,
    "tanhshrink": F.tanhshrink,
    "logsigmoid": F.logsigmoid,
}


@pytest.mark.parametrize("name", list(FUNCTIONS))
@given(shape=shapes(), seed=seeds)
def test_gradients_over_drawn_shapes(name, shape, seed):
    r = np.random.default_rng(seed)
    x = r.choice([-1, 1], shape) * r.uniform(0.05, 0.95, shape) * 2 + 0.013  # clear of kinks
    check_op(FUNCTIONS[name], [x], seed=seed)


@given(shape=shapes(2, 3), seed=seeds)
def test_prelu_and_glu_over_drawn_shapes(shape, seed):
    r = np.random.default_rng(seed)
    x = r.choice([-1, 1], shape) * r.uniform(0.1, 2, shape)
    check_op(F.prelu, [x, r.uniform(0.1, 0.5, shape[1])], seed=seed)
    even = np.concatenate([x, x[..., ::-1] * 0.5], axis=-1)
    check_op(F.glu, [even], seed=seed)


@given(shape=shapes(), seed=seeds)
def test_identities(shape, seed):
    x = md.tensor(np.random.default_rng(seed).standard_normal(shape) * 5, dtype=md.float64)
    close = np.testing.assert_allclose
    close(F.hardsigmoid(x).numpy(), (F.relu6(x + 3) / 6).numpy(), atol=1e-15)
    close(F.hardswish(x).numpy(), (x * F.hardsigmoid(x)).numpy(), atol=1e-14)
    close(F.silu(x).numpy(), (x * F.sigmoid(x)).numpy(), atol=1e-14)
    close(F.logsigmoid(x).numpy(), np.log(F.sigmoid(x).numpy()), rtol=1e-9, atol=1e-12)
    close(F.celu(x, 1.0).numpy(), F.elu(x).numpy(), atol=1e-14)
    close(F.hardtanh(x, 0, 6).numpy(), F.relu6(x).numpy())
    assert (np.abs(F.softsign(x).numpy()) < 1).all()


def test_kink_conventions():
    """PyTorch's choices: hardtanh/relu6 pass no gradient at their bounds (clamp does);
    hardswish'(-3) = 0 and hardswish'(3) = 1; prelu'(0) = the slope."""
    x = md.tensor([-1.0, 1.0, 0.0, 6.0], requires_grad=True)
    (F.hardtanh(x) + F.relu6(x)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 1, 0])
    y = md.tensor([-3.0, 3.0], requires_grad=True)
    F.hardswish(y).sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [0, 1])
    z = md.tensor([0.0], requires_grad=True)
    F.prelu(z, md.tensor([0.3])).sum().backward()
    assert z.grad.item() == pytest.approx(0.3)


def test_errors_name_the_op_and_shapes():
    with pytest.raises(ValueError, match=r"glu: dim -1 of input \(2, 3\) must have an even size"):
        F.glu(md.zeros(2, 3))
    with pytest.raises(ValueError, match=r"prelu: weight of shape \(3,\) for input \(2, 4\)"):
        F.prelu(md.zeros(2, 4), md.zeros(3))
    with pytest.raises(ValueError, match="Hardtanh: min_val 2 is greater than max_val 1"):
        nn.Hardtanh(2, 1)


def test_prelu_state_dict_matches_torch_layout():
    torch = pytest.importorskip("torch")
    assert {k: tuple(v.shape) for k, v in torch.nn.PReLU(5).state_dict().items()} == {
        k: v.shape for k, v in nn.PReLU(5).state_dict().items()
    }
    np.testing.assert_array_equal(nn.PReLU(3, init=0.1).weight.numpy(), np.float32(0.1))
