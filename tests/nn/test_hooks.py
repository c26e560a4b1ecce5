"""Module hooks against PyTorch: the same hooks on the same layers see the same inputs,
outputs, grad_input and grad_output, and what they return changes the same things.
Handles remove hooks; hooks that return the wrong number or shape of gradients raise,
naming the module and the shapes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import minidl as md
from minidl import nn


def _pair(make, torch):
    """The same layer in minidl and PyTorch (make(lib) builds it), float64, same weights."""
    ours, ref = make(nn), make(torch.nn)
    ours.double()
    ref.double()
    ref.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    return ours, ref


def _np(values):
    """Tensors (either library) to arrays, None kept: one tuple a hook saw."""
    return [None if v is None else np.asarray(v.detach().numpy()) for v in values]


def _assert_same(ours, ref):
    assert len(ours) == len(ref)
    for a, b in zip(_np(ours), _np(ref)):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def _run(model, lib, x, upstream, requires_grad=True):
    x = lib.tensor(x, requires_grad=requires_grad)
    out = model(x)
    out.backward(lib.tensor(upstream))
    return x


def _mlp(lib):
    return lib.Sequential(lib.Linear(5, 4), lib.Tanh(), lib.Linear(4, 3))


@pytest.mark.parametrize("input_requires_grad", [True, False])
def test_full_backward_hooks_see_what_torch_sees(input_requires_grad):
    torch = pytest.importorskip("torch")
    ours, ref = _pair(_mlp, torch)
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((6, 5)), rng.standard_normal((6, 3))
    seen = {"ours": [], "ref": []}
    for key, model in (("ours", ours), ("ref", ref)):
        for name, layer in model.named_children():
            layer.register_full_backward_pre_hook(
                lambda m, go, n=name, k=key: seen[k].append(("pre", n, go))
            )
            layer.register_full_backward_hook(
                lambda m, gi, go, n=name, k=key: seen[k].append(("full", n, gi, go))
            )
    with warnings.catch_warnings():  # torch warns when no input requires grad
        warnings.simplefilter("ignore")
        _run(ours, md, x, dy, input_requires_grad)
        _run(ref, torch, x, dy, input_requires_grad)
    assert [s[:2] for s in seen["ours"]] == [s[:2] for s in seen["ref"]]
    for a, b in zip(seen["ours"], seen["ref"]):
        for part_a, part_b in zip(a[2:], b[2:]):
            _assert_same(part_a, part_b)


def test_returned_gradients_replace_grad_input_and_grad_output_as_in_torch():
    torch = pytest.importorskip("torch")
    ours, ref = _pair(_mlp, torch)
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((2, 5)), rng.standard_normal((2, 3))
    for model in (ours, ref):
        model[2].register_full_backward_pre_hook(lambda m, go: (go[0] * 3,))
        model[1].register_full_backward_hook(lambda m, gi, go: (gi[0].clamp(-0.1, 0.1),))
    xo, xr = _run(ours, md, x, dy), _run(ref, torch, x, dy)
    np.testing.assert_allclose(xo.grad.numpy(), xr.grad.numpy(), rtol=1e-10)
    for (name, p), q in zip(ours.named_parameters(), ref.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-10, err_msg=name)


class _TwoInOut:
    """forward(a, scale, b) -> (a * scale + b, a - b): a non-tensor input and two outputs."""

    @staticmethod
    def make(lib):
        class TwoInOut(lib.Module):
            def forward(self, a, scale, b):
                return a * scale + b, a - b

        return TwoInOut()


@pytest.mark.parametrize("b_requires_grad", [True, False])
@pytest.mark.parametrize("use_second_output", [True, False])
def test_non_tensor_inputs_and_unused_outputs_are_none(b_requires_grad, use_second_output):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    g1, g2 = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    seen = []
    for lib in (md, torch):
        module = _TwoInOut.make(lib.nn)
        module.register_full_backward_hook(lambda m, gi, go: seen.append((gi, go)))
        ta = lib.tensor(a, requires_grad=True)
        tb = lib.tensor(b, requires_grad=b_requires_grad)
        y1, y2 = module(ta, 2.0, tb)
        loss = (y1 * lib.tensor(g1)).sum()
        if use_second_output:
            loss = loss + (y2 * lib.tensor(g2)).sum()
        loss.backward()
    (gi_ours, go_ours), (gi_ref, go_ref) = seen
    _assert_same(gi_ours, gi_ref)
    _assert_same(go_ours, go_ref)
    assert gi_ours[1] is None and len(gi_ours) == 3


def test_forward_hooks_replace_inputs_and_outputs_as_in_torch():
    torch = pytest.importorskip("torch")
    ours, ref = _pair(lambda lib: lib.Linear(4, 3), torch)
    x = np.random.default_rng(3).standard_normal((2, 4))
    outs = []
    for lib, layer in ((md, ours), (torch, ref)):
        layer.register_forward_pre_hook(lambda m, args: args[0] * 2)  # one value: wrapped
        layer.register_forward_pre_hook(
            lambda m, args, kwargs: ((args[0] + 1,), kwargs), with_kwargs=True
        )
        layer.register_forward_hook(lambda m, args, out: out - args[0].sum())
        layer.register_forward_hook(lambda m, args, kwargs, out: out * 3, with_kwargs=True)
        outs.append(layer(lib.tensor(x)))
    np.testing.assert_allclose(outs[0].numpy(), outs[1].detach().numpy(), rtol=1e-10)


def test_prepend_and_removal_order():
    layer = nn.Identity()
    calls = []
    first = layer.register_forward_hook(lambda m, a, o: calls.append("first"))
    layer.register_forward_hook(lambda m, a, o: calls.append("front"), prepend=True)
    with layer.register_forward_pre_hook(lambda m, a: calls.append("pre")):
        layer(md.ones(1))
    assert calls == ["pre", "front", "first"]
    first.remove()
    first.remove()  # removing twice is harmless
    calls.clear()
    layer(md.ones(1))
    assert calls == ["front"]


def test_feature_extraction_with_forward_hooks():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    features = {}
    handles = [
        m.register_forward_hook(lambda m, a, out, n=n: features.__setitem__(n, out))
        for n, m in model.named_children()
    ]
    x = md.randn(5, 4)
    out = model(x)
    assert [features[n].shape for n in ("0", "1", "2")] == [(5, 8), (5, 8), (5, 2)]
    assert md.allclose(features["2"], out)
    assert md.allclose(features["1"], features["0"].relu())
    for h in handles:
        h.remove()
    assert not model[0]._forward_hooks


def test_hooks_fire_on_each_backward_with_retain_graph():
    layer = nn.Linear(3, 3)
    calls = []
    layer.register_full_backward_hook(lambda m, gi, go: calls.append(gi[0].shape))
    loss = layer(md.randn(2, 3, requires_grad=True)).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    assert calls == [(2, 3), (2, 3)]


def test_hook_of_wrong_shape_names_the_module_and_the_shapes():
    layer = nn.Linear(3, 2)
    layer.register_full_backward_hook(lambda m, gi, go: (gi[0][:1],))
    with pytest.raises(RuntimeError, match=r"Linear: full backward hook .* \(1, 3\) .* \(4, 3\)"):
        layer(md.randn(4, 3, requires_grad=True)).sum().backward()


def test_hook_returning_wrong_number_of_gradients_raises():
    layer = nn.Linear(3, 2)
    layer.register_full_backward_pre_hook(lambda m, go: (go[0], go[0]))
    with pytest.raises(
        RuntimeError, match="Linear: backward pre-hook returned 2 gradients, expected 1"
    ):
        layer(md.randn(4, 3, requires_grad=True)).sum().backward()


def test_full_hook_must_return_none_when_no_input_requires_grad():
    layer = nn.Linear(3, 2)
    layer.register_full_backward_hook(lambda m, gi, go: (md.ones(4, 3),))
    with pytest.raises(RuntimeError, match="Linear: no input of this module requires grad"):
        layer(md.randn(4, 3)).sum().backward()


def test_no_hooks_no_wrapping():
    layer = nn.Linear(3, 2)
    x = md.randn(4, 3, requires_grad=True)
    assert layer(x).grad_fn.inputs[0] is x
    handle = layer.register_full_backward_hook(lambda m, gi, go: None)
    assert layer(x).grad_fn.inputs[0] is not x  # forward sees the identity op's output
    handle.remove()
    assert layer(x).grad_fn.inputs[0] is x


def test_backward_hooks_under_create_graph_match_torch():
    """A gradient penalty through a hooked layer: the same second-order gradients as
    without hooks and as PyTorch, and the hooks see the same (graph-carrying) gradients."""
    torch = pytest.importorskip("torch")
    ours, ref = _pair(lambda lib: lib.Linear(3, 2), torch)
    x = np.random.default_rng(4).standard_normal((4, 3))
    weight_grads, seen = [], {"ours": [], "ref": []}
    for key, lib, layer in (("plain", md, ours), ("ours", md, ours), ("ref", torch, ref)):
        if key != "plain":
            layer.register_full_backward_hook(
                lambda m, gi, go, k=key: seen[k].append((gi[0].requires_grad, _np(go)))
            )
        tx = lib.tensor(x, requires_grad=True)
        (g,) = lib.autograd.grad(layer(tx).tanh().sum(), tx, create_graph=True)
        (g * g).sum().backward()
        weight_grads.append(layer.weight.grad.detach().numpy().copy())
        layer.weight.grad = None
    np.testing.assert_allclose(weight_grads[1], weight_grads[0], rtol=1e-12)
    np.testing.assert_allclose(weight_grads[2], weight_grads[0], rtol=1e-10)
    assert [s[0] for s in seen["ours"]] == [s[0] for s in seen["ref"]] == [True, False]
    for (_, a), (_, b) in zip(seen["ours"], seen["ref"]):
        np.testing.assert_allclose(a[0], b[0], rtol=1e-10)


def test_always_call_hooks_run_when_forward_raises():
    class Broken(nn.Module):
        def forward(self, x):
            raise ValueError("forward failed")

    module, calls = Broken(), []
    module.register_forward_hook(lambda m, a, out: calls.append(("plain", out)))
    handle = module.register_forward_hook(
        lambda m, a, out: calls.append(("always", out)), always_call=True
    )
    with pytest.raises(ValueError, match="forward failed"):
        module(md.ones(1))
    assert calls == [("always", None)]
    handle.remove()
    assert not module._forward_hooks_always_called


def test_grad_cam_from_hooks_matches_torch():
    """Grad-CAM on a small CNN, built only from a forward hook (the feature maps) and a
    full backward hook (their gradient) on the last conv layer: same map as PyTorch."""
    torch = pytest.importorskip("torch")

    def cnn(lib):
        return lib.Sequential(
            lib.Conv2d(1, 4, 3, padding=1),
            lib.ReLU(),
            lib.Conv2d(4, 6, 3, padding=1),
            lib.ReLU(),
            lib.AdaptiveAvgPool2d(1),
            lib.Flatten(),
            lib.Linear(6, 3),
        )

    md.manual_seed(0)  # the weights: unseeded, some draws leave every ReLU of layer 3 off
    ours, ref = _pair(cnn, torch)
    image = np.random.default_rng(5).standard_normal((1, 1, 8, 8))
    maps = []
    for lib, model in ((md, ours), (torch, ref)):
        saved = {}
        model[3].register_forward_hook(lambda m, a, out, s=saved: s.__setitem__("act", out))
        model[3].register_full_backward_hook(
            lambda m, gi, go, s=saved: s.__setitem__("grad", go[0])
        )
        scores = model(lib.tensor(image))
        scores[0, 2].backward()
        act, grad = saved["act"].detach().numpy(), saved["grad"].detach().numpy()
        weights = grad.mean(axis=(2, 3), keepdims=True)  # one weight per channel
        maps.append(np.maximum((weights * act).sum(axis=1), 0))
    np.testing.assert_allclose(maps[0], maps[1], rtol=1e-9, atol=1e-12)
    assert maps[0].shape == (1, 8, 8) and maps[0].max() > 0
