"""mnist_manual_backprop: each hand-written backward is the chain rule, checked against
minidl's autograd and against finite differences; the network learns; the quick run works."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minidl as md
from minidl.nn import functional as F
from projects import _mnist
from projects.mnist_manual_backprop import (
    NETWORKS,
    Dense,
    Network,
    ReLU,
    Sigmoid,
    SoftmaxCrossEntropy,
    autograd_gradients,
    finite_difference_error,
    manual_gradients,
)
from projects.runner import run_project


def _batch(n: int, features: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, features)), rng.integers(0, classes, n)


# ----------------------------------------------------------------- one layer at a time
def _autograd_backward(fn, *arrays, upstream):
    """Gradients of sum(fn(*inputs) * upstream) w.r.t. each input, by minidl's autograd."""
    inputs = [md.tensor(a, requires_grad=True) for a in arrays]
    (fn(*inputs) * md.tensor(upstream)).sum().backward()
    return [t.grad.numpy() for t in inputs]


def test_dense_backward_matches_autograd():
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((5, 7)), rng.standard_normal((3, 7)), rng.standard_normal(3)
    dy = rng.standard_normal((5, 3))
    layer = Dense(w.copy(), b.copy())
    np.testing.assert_allclose(layer.forward(x), x @ w.T + b)
    dx = layer.backward(dy)
    expected = _autograd_backward(F.linear, x, w, b, upstream=dy)
    for mine, theirs in zip((dx, layer.dW, layer.db), expected):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("layer", "fn"), [(Sigmoid, F.sigmoid), (ReLU, F.relu)])
def test_activation_backward_matches_autograd(layer, fn):
    rng = np.random.default_rng(2)
    x, dy = rng.standard_normal((4, 6)) * 3, rng.standard_normal((4, 6))
    act = layer()
    np.testing.assert_allclose(act.forward(x), fn(md.tensor(x)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(
        act.backward(dy), _autograd_backward(fn, x, upstream=dy)[0], rtol=1e-12, atol=1e-15
    )


def test_sigmoid_does_not_overflow_far_from_zero():
    s = Sigmoid().forward(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(s, [0.0, 0.5, 1.0])


def test_softmax_cross_entropy_matches_autograd():
    z, y = _batch(6, 4, 4, seed=3)
    criterion = SoftmaxCrossEntropy()
    loss = criterion.forward(z, y)
    logits = md.tensor(z, requires_grad=True)
    expected = F.cross_entropy(logits, md.tensor(y))
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-12)
    np.testing.assert_allclose(criterion.backward(), logits.grad.numpy(), rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------- whole networks
@given(
    hidden=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    activation=st.sampled_from(["sigmoid", "relu"]),
    n=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_network_gradients_equal_autograd(hidden, activation, n, seed):
    x, y = _batch(n, 7, 3, seed)
    net = Network([7, *hidden, 3], activation, np.random.default_rng(seed), np.float64)
    manual, auto = manual_gradients(net, x, y), autograd_gradients(net, x, y)
    assert manual.keys() == auto.keys()
    for key in manual:
        np.testing.assert_allclose(manual[key], auto[key], rtol=1e-6, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_project_networks_match_autograd_and_finite_differences(name):
    sizes, activation, _ = NETWORKS[name]
    x, y = _batch(8, 784, 10)
    net = Network(sizes, activation, np.random.default_rng(0))
    manual, auto = manual_gradients(net, x, y), autograd_gradients(net, x, y)
    for key in manual:
        np.testing.assert_allclose(manual[key], auto[key], rtol=1e-6, atol=1e-12, err_msg=key)
    check = finite_difference_error(net, x, y, per_param=6)
    assert check["max_rel_err"] < 1e-5 and check["max_abs_err"] < 1e-9
    assert check["skipped_at_relu_kinks"] <= 2


def test_finite_differences_catch_a_wrong_backward(monkeypatch):
    x, y = _batch(8, 10, 4)
    net = Network([10, 6, 6, 4], "sigmoid", np.random.default_rng(0), np.float64)
    assert finite_difference_error(net, x, y)["max_rel_err"] < 1e-6
    # The classic slip: forgetting the (1 - s) factor of the sigmoid's derivative.
    monkeypatch.setattr(Sigmoid, "backward", lambda self, dy: dy * self.s)
    assert finite_difference_error(net, x, y)["max_rel_err"] > 1e-2


def test_deep_sigmoid_gradients_vanish_towards_the_input():
    x, y = _batch(64, 784, 10)
    ratios = {}
    for activation in ("sigmoid", "relu"):
        net = Network(NETWORKS["deep_relu"][0], activation, np.random.default_rng(0))
        net.loss(x.astype(np.float32), y)
        net.backward()
        norms = [np.linalg.norm(layer.dW) for _, layer in net.dense()]
        ratios[activation] = norms[0] / norms[-1]
    # Through five sigmoids the first layer gets a hundredth of the last one's gradient.
    assert ratios["sigmoid"] < 0.01 and ratios["relu"] > 0.1


@pytest.mark.parametrize("name", ["shallow_sigmoid", "deep_relu"])
def test_network_overfits_one_small_batch(name):
    sizes, activation, lr = NETWORKS[name]
    x, y = _batch(16, 784, 10)
    x = x.astype(np.float32)
    net = Network(sizes, activation, np.random.default_rng(0))
    for _ in range(150):
        loss = net.loss(x, y)
        net.backward()
        net.sgd_step(lr)
    assert loss < 0.01
    assert (net.predict(x).argmax(1) == y).all()


# ----------------------------------------------------------------- the project
@pytest.mark.skipif(not _mnist.available(), reason="MNIST is not under MINIDL_DATA")
def test_quick_run_writes_metrics_and_figures(tmp_path):
    run_project("mnist_manual_backprop", out=tmp_path, quick=True)
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert set(report["figures"]) == {
        "learning_curves_loss.png",
        "learning_curves_accuracy.png",
        "grad_norms_deep_sigmoid.png",
        "grad_norms_deep_relu.png",
        "grad_norm_by_layer.png",
        "learning_curves_shallow.png",
    }
    for name in report["figures"]:
        assert (tmp_path / name).stat().st_size > 1000
    results = report["results"]
    assert results["max_abs_diff_vs_autograd"] < 1e-6
    assert results["max_rel_err_vs_finite_differences"] < 1e-4
    for name in NETWORKS:
        assert 0.0 <= results[name]["test_accuracy"] <= 1.0
        assert (
            len(results[name]["grad_norm_per_layer"]["first_epoch"])
            == len(results[name]["sizes"]) - 1
        )
    assert results["shallow_sigmoid"]["test_accuracy"] > 0.6
    assert results["deep_relu"]["test_accuracy"] > 0.5
