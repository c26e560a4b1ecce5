"""What the graph keeps alive: only what backward needs, and only until it has run.

As in PyTorch, an op holds the graph node of each input (the op that made it, or a leaf),
not the input: an intermediate result lives on only while the caller keeps it or an op
saved its array; each op frees what it saved as soon as its backward has run. Checked with
weak references to the arrays and with tracemalloc, never with timings.
"""

from __future__ import annotations

import tracemalloc
import weakref

import numpy as np
import pytest

import minidl as md
from minidl import nn
from minidl.autograd import grad
from minidl.graph_edges import is_placeholder
from minidl.tensor import Op, nodes_below

MIB = 2**20


def _outputs_of(model: nn.Module) -> dict[str, weakref.ref]:
    """A weak reference to the output array of each submodule, filled by forward hooks."""
    refs: dict[str, weakref.ref] = {}
    for name, module in model.named_children():
        module.register_forward_hook(
            lambda m, args, out, name=name: refs.__setitem__(name, weakref.ref(out.data))
        )
    return refs


def test_an_activation_no_op_saved_is_freed_while_the_graph_lives():
    """BatchNorm's output feeds ReLU, which saves its own output: nothing needs the
    BatchNorm output for backward, so it goes as soon as forward is past it."""
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2))
    refs = _outputs_of(model)
    loss = model(md.randn(2, 2, 8, 8)).sum()
    assert refs["1"]() is None  # BatchNorm's output: freed
    assert refs["2"]() is not None  # ReLU's output: saved by ReLU (and MaxPool)
    loss.backward()
    del loss
    assert all(ref() is None for ref in refs.values())


def _kept_by_graph(out: md.Tensor, exclude: list[md.Tensor]) -> int:
    """Bytes of the distinct arrays the graph below ``out`` keeps (saved, or held for a
    reference), not counting those of ``exclude`` (parameters, the input)."""

    def root(a):
        while getattr(a, "base", None) is not None:
            a = a.base
        return a

    skip = {id(root(t.data)) for t in exclude}
    kept = {}
    for fn in (n for n in nodes_below([out]) if isinstance(n, Op)):
        held = [h.data for h in fn._held if isinstance(h, md.Tensor)]
        for a in [*(fn._saved or ()), *held]:
            if hasattr(a, "nbytes") and id(root(a)) not in skip:
                kept[id(root(a))] = root(a).nbytes
    return sum(kept.values())


@pytest.mark.parametrize(
    "conv",
    [
        lambda: nn.Conv2d(3, 8, 3, padding=1),
        # its output is a view cropped from a padded buffer (a reshape of it copies)
        lambda: nn.ConvTranspose2d(3, 8, 4, stride=2, padding=1),
    ],
)
def test_a_conv_batchnorm_relu_block_keeps_two_activations_as_pytorch(conv):
    """BatchNorm saves its input (the conv output), not xhat; ReLU its output: two
    activations of the block's size, as PyTorch keeps (the third, BatchNorm's output, goes)."""
    model = nn.Sequential(conv(), nn.BatchNorm2d(8), nn.ReLU())
    x = md.randn(4, 3, 8, 8)
    out = model(x)
    conv_out = model[0](x).data
    conv_out = conv_out if conv_out.base is None else conv_out.base  # the padded buffer
    kept = _kept_by_graph(out, [x, *model.parameters()])
    # + per-channel statistics; ConvTranspose also keeps a batch-last copy of its input
    extra = x.data.nbytes if isinstance(model[0], nn.ConvTranspose2d) else 0
    assert kept - conv_out.nbytes - out.data.nbytes - extra < 1024


def test_a_chain_of_ops_that_save_nothing_keeps_one_activation_alive():
    """y = x + 1 + 1 + ... : no op saves anything, so forward keeps ~one 4 MiB array alive
    at a time, not one per op (the old engine held all 16 through the ops' inputs)."""
    x = md.zeros(2**20, requires_grad=True)
    tracemalloc.start()
    try:
        y = x
        for _ in range(16):
            y = y + 1.0
        held = tracemalloc.get_traced_memory()[0]
        y.sum().backward()
    finally:
        tracemalloc.stop()
    assert held < 3 * 4 * MIB
    np.testing.assert_array_equal(x.grad.numpy(), 1.0)


def test_backward_frees_each_ops_saved_arrays_even_while_the_output_lives():
    x = md.randn(1000, requires_grad=True)
    e = x.exp()  # Exp saves its output
    saved = weakref.ref(e.data)
    out = (e * 2).sum()
    del e
    assert saved() is not None  # needed by Exp's backward
    out.backward()
    assert saved() is None and out.grad_fn is not None


def test_an_ops_saved_arrays_are_freed_before_the_ops_below_it_run():
    """The backward of a node frees its saved arrays at once, not when the pass ends."""
    x = md.randn(1000, requires_grad=True)
    u = x * 3
    e = u.exp()
    saved = weakref.ref(e.data)
    loss = e.sum()
    del e
    freed_when_u_got_its_gradient = []
    u.register_hook(lambda g: freed_when_u_got_its_gradient.append(saved() is None))
    loss.backward()
    assert freed_when_u_got_its_gradient == [True]
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.exp(3 * x.numpy()), rtol=1e-6)


def test_retain_graph_keeps_the_saved_arrays_for_a_second_backward():
    x = md.randn(100, requires_grad=True)
    e = x.exp()
    saved = weakref.ref(e.data)
    loss = e.sum()
    del e
    loss.backward(retain_graph=True)
    assert saved() is not None
    loss.backward()
    assert saved() is None
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp(x.numpy()), rtol=1e-6)


def test_hooks_on_a_dropped_intermediate_still_run():
    """The hook belongs to the graph node, not to the Python object (as in PyTorch)."""
    x = md.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    seen = []
    h.register_hook(lambda g: seen.append(g.numpy().copy()) or g * 10)
    loss = (h * h).sum()
    del h
    loss.backward()
    np.testing.assert_allclose(seen[0], [4.0, 8.0])
    np.testing.assert_allclose(x.grad.numpy(), [80.0, 160.0])


def test_retain_grad_reaches_the_tensor_while_it_lives():
    x = md.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), [4.0, 8.0])


def test_create_graph_through_ops_whose_inputs_are_gone():
    """The double backward reads saved arrays: d/dx sum(exp(2x)^2)' = 16 exp(4x)."""
    x = md.tensor([0.1, -0.3], dtype=md.float64, requires_grad=True)
    y = (x * 2).exp()
    loss = (y * y).sum()
    del y
    (g,) = grad(loss, x, create_graph=True)
    g.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 16 * np.exp(4 * x.numpy()), rtol=1e-12)


def test_inputs_of_an_op_stand_in_for_dropped_tensors():
    """``grad_fn.inputs`` gives a stand-in for an input the caller let go: the same graph
    node, the right shape and dtype, and no values unless an op saved them."""
    x = md.randn(3, 4, requires_grad=True)
    h = x + 1  # nothing saves h: Add saves nothing, Sum saves nothing
    out = h.sum()
    del h
    (stand_in,) = out.grad_fn.inputs
    assert stand_in.shape == (3, 4) and stand_in.dtype == md.float32
    assert stand_in.grad_fn is not None and stand_in.grad_fn.name == "Add"
    assert is_placeholder(stand_in)
    e = x.exp()
    out = e * 2
    del e
    saved_input = out.grad_fn.inputs[0]  # Mul saved it: the values are there
    assert not is_placeholder(saved_input)
    np.testing.assert_allclose(saved_input.numpy(), np.exp(x.numpy()))


@pytest.mark.parametrize("retain", [False, True])
def test_a_model_step_leaves_no_activation_behind(retain):
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 36, 2))
    refs = _outputs_of(model)
    loss = model(md.randn(2, 1, 8, 8)).sum()
    loss.backward(retain_graph=retain)
    del loss
    assert all(ref() is None for ref in refs.values())


def test_a_convolutions_columns_are_built_in_bounded_parts():
    """A 3x3x3 convolution's im2col columns are 27x its input (here 17.5 MiB): forward and
    backward build them a part at a time (``minidl.parallel.MAX_PART_BYTES``), so the step
    never holds them whole."""
    conv = nn.Conv3d(4, 8, 3)
    x = md.randn(4, 4, 24, 24, 24, requires_grad=True)
    columns = 4 * 27 * 22**3 * 4 * 4  # C_in * k^3 * positions * N floats
    tracemalloc.start()
    try:
        (conv(x) ** 2).sum().backward()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert columns > 17 * MIB and peak < 0.6 * columns  # unbounded: above the columns
