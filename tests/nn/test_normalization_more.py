"""GroupNorm, InstanceNorm1d/2d/3d, LocalResponseNorm, RMSNorm and AlphaDropout against
PyTorch (state dicts, outputs, gradients, running statistics), over drawn shapes, and
their identities."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from invariants import check_op
from strategies import seeds

import minidl as md
from minidl import nn
from minidl.nn import functional as F

rng = np.random.default_rng(0)

LAYERS = [
    ("GroupNorm", (2, 6), {}, (3, 6, 5), True, 1),
    ("GroupNorm", (3, 6), {"affine": False}, (3, 6, 2, 2), True, 1),
    ("InstanceNorm1d", (4,), {}, (3, 4, 5), True, 1),
    ("InstanceNorm2d", (4,), {"affine": True}, (3, 4, 5, 3), True, 1),
    ("InstanceNorm2d", (4,), {"affine": True, "bias": False}, (4, 5, 3), True, 1),
    (
        "InstanceNorm3d",
        (4,),
        {"affine": True, "track_running_stats": True},
        (2, 4, 3, 2, 3),
        True,
        3,
    ),
    ("InstanceNorm1d", (4,), {"track_running_stats": True}, (2, 4, 5), False, 1),
    ("LocalResponseNorm", (3,), {}, (2, 6, 4), True, 1),
    ("LocalResponseNorm", (4,), {"alpha": 0.1, "beta": 0.5, "k": 2.0}, (2, 6, 3, 3), True, 1),
    ("RMSNorm", ((3, 4),), {}, (2, 3, 4), True, 1),
    ("RMSNorm", (4,), {"eps": 1e-3, "elementwise_affine": False}, (2, 3, 4), True, 1),
]


@pytest.mark.parametrize("name, args, kwargs, shape, training, steps", LAYERS)
def test_matches_torch(name, args, kwargs, shape, training, steps):
    """Random affine parameters loaded both ways; after ``steps`` training batches the
    outputs, all gradients and the running statistics agree."""
    torch = pytest.importorskip("torch")
    tlayer = getattr(torch.nn, name)(*args, **kwargs).double()
    mlayer = getattr(nn, name)(*args, **kwargs).double()
    state = {k: v.detach().numpy() for k, v in tlayer.state_dict().items()}
    for k in state:
        if k.endswith(("weight", "bias")):
            state[k] = rng.standard_normal(state[k].shape)
    tlayer.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    mlayer.load_state_dict(state)
    assert list(mlayer.state_dict()) == list(tlayer.state_dict())
    assert repr(mlayer) == repr(tlayer)
    tlayer.train(training)
    mlayer.train(training)
    for _ in range(steps):
        x = rng.standard_normal(shape) * 2 + 1
        tx, mx = torch.tensor(x, requires_grad=True), md.tensor(x, requires_grad=True)
        tout, mout = tlayer(tx), mlayer(mx)
    np.testing.assert_allclose(mout.numpy(), tout.detach().numpy(), atol=1e-12)
    g = rng.standard_normal(tout.shape)
    tout.backward(torch.tensor(g))
    mout.backward(md.tensor(g))
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), atol=1e-12)
    for p, q in zip(mlayer.parameters(), tlayer.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), atol=1e-11)
    for b, c in zip(mlayer.buffers(), tlayer.buffers()):
        np.testing.assert_allclose(b.numpy(), c.numpy(), atol=1e-12)


@given(n=st.integers(1, 3), groups=st.integers(1, 3), per=st.integers(1, 3), seed=seeds)
def test_group_norm_gradients_and_its_extremes(n, groups, per, seed):
    r = np.random.default_rng(seed)
    c = groups * per
    x = r.standard_normal((n, c, 4))
    check_op(
        lambda t, w, b: F.group_norm(t, groups, w, b),
        [x, r.standard_normal(c), r.standard_normal(c)],
        seed=seed,
    )
    t = md.tensor(x)
    # one group per channel is instance norm; one group is layer norm over (C, L)
    np.testing.assert_allclose(F.group_norm(t, c).numpy(), F.instance_norm(t).numpy(), atol=1e-10)
    np.testing.assert_allclose(
        F.group_norm(t, 1).numpy(), F.layer_norm(t, (c, 4)).numpy(), atol=1e-10
    )


@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=3).map(tuple), seed=seeds)
def test_rms_norm_and_local_response_norm_over_drawn_shapes(shape, seed):
    r = np.random.default_rng(seed)
    x = r.standard_normal((2, *shape))
    check_op(lambda t: F.rms_norm(t, shape[-1:], eps=1e-6), [x], seed=seed)
    check_op(lambda t: F.local_response_norm(t, 2, alpha=0.3), [x], seed=seed)
    y = F.rms_norm(md.tensor(x), shape[-1:], eps=0.0).numpy()
    np.testing.assert_allclose((y**2).mean(-1), 1.0, rtol=1e-6)


def test_alpha_dropout_keeps_mean_and_variance():
    md.manual_seed(0)
    x = F.selu(md.randn(200_000) * 0.5)  # SELU output is what AlphaDropout follows
    x = (x - x.mean()) / x.std()
    layer = nn.AlphaDropout(0.3)
    y = layer(x).numpy()
    assert abs(y.mean()) < 0.01 and abs(y.std() - 1) < 0.01
    a = ((1 - 0.3) * (1 + 0.3 * 1.7580993408473766**2)) ** -0.5
    dropped = a * -1.7580993408473766 + a * 1.7580993408473766 * 0.3  # a alpha' + b
    assert np.isclose(y, dropped, atol=1e-6).mean() == pytest.approx(0.3, abs=0.01)
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    np.testing.assert_array_equal(F.alpha_dropout(x, 0.3).numpy(), x.numpy())  # off by default


def test_alpha_dropout_gradient_is_the_scale_where_kept():
    md.manual_seed(1)
    x = md.randn(1000, requires_grad=True)
    y = F.alpha_dropout(x, 0.2, training=True)
    y.sum().backward()
    a = ((1 - 0.2) * (1 + 0.2 * 1.7580993408473766**2)) ** -0.5
    grads = np.unique(np.round(x.grad.numpy(), 6))
    np.testing.assert_allclose(grads, [0.0, a], atol=1e-6)


def test_errors_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"GroupNorm: num_channels \(5\) must be divisible"):
        nn.GroupNorm(2, 5)
    with pytest.raises(ValueError, match=r"InstanceNorm2d: expected 3D or 4D input"):
        nn.InstanceNorm2d(3)(md.zeros(2, 3))
    with pytest.raises(ValueError, match=r"rms_norm: normalized_shape \(5,\)"):
        F.rms_norm(md.zeros(2, 4), 5)
