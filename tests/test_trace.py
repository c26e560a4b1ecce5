"""``minidl.autograd.trace``: every op's forward and backward recorded in order with shapes,
dtypes, statistics, time and bytes; the table and the per-op summary; nothing recorded
outside the block; and ``detect_anomaly`` showing where a failing op was created."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
import minidl.nn.functional as F
from minidl import nn
from minidl.autograd import trace
from minidl.tensor import _observers


def _step():
    md.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = md.randn(5, 4), md.tensor([0, 1, 2, 0, 1])
    return model, x, y


def test_forward_then_backward_in_order_with_shapes_and_values():
    model, x, y = _step()
    with trace() as tr:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    forward = [r for r in tr.records if r.phase == "forward"]
    backward = [r for r in tr.records if r.phase == "backward"]
    assert [r.op for r in forward] == ["Linear", "ReLU", "Linear", "LogSoftmax", "NLL"]
    assert [r.op for r in backward] == ["NLL", "LogSoftmax", "Linear", "ReLU", "Linear"]
    assert [r.index for r in tr.records] == list(range(10))
    first = forward[0]
    assert first.input_shapes == [(5, 4), (8, 4), (8,)]
    assert first.input_dtypes == ["float32"] * 3
    assert first.output_shape == (5, 8) and first.output_dtype == "float32"
    h = x.numpy() @ model[0].weight.numpy().T + model[0].bias.numpy()
    np.testing.assert_allclose(first.stats["output"], (h.min(), h.mean(), h.max()), rtol=1e-5)
    assert first.bytes >= 5 * 8 * 4  # at least its output
    assert forward[-1].stats["output"][1] == pytest.approx(loss.item())
    last = backward[-1]  # the first Linear: gradients for x (not needed), weight, bias
    w_grad = model[0].weight.grad.numpy()
    np.testing.assert_allclose(
        last.stats["grad_input 1"], (w_grad.min(), w_grad.mean(), w_grad.max()), rtol=1e-5
    )
    assert "grad_input 0" not in last.stats  # x needs no gradient
    assert all(r.seconds > 0 for r in tr.records)


def test_table_and_summary():
    model, x, y = _step()
    with trace(profile_memory=True) as tr:
        F.cross_entropy(model(x), y).backward()
    table = tr.table()
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["#", "phase", "op"] and len(lines) == 2 + 10
    assert "(5,4) (8,4) (8,)" in table and "(5,8) float32" in table
    assert len(tr.table(limit=3).splitlines()) == 2 + 3 + 1  # and "... 7 more"
    summary = tr.summary()
    by_op = tr.by_op()
    assert by_op["Linear"]["calls"] == 2 and by_op["ReLU"]["calls"] == 1
    total = sum(e["forward_s"] + e["backward_s"] for e in by_op.values())
    assert total == pytest.approx(sum(r.seconds for r in tr.records))
    assert summary.splitlines()[0].split()[:2] == ["op", "calls"]
    assert "peak MiB" in summary and summary.splitlines()[-1].startswith("total")
    assert all(r.peak_bytes is not None for r in tr.records)


def test_nothing_is_recorded_outside_and_the_engine_list_is_empty_again():
    model, x, _ = _step()
    with trace(values=False) as tr:
        model(x)
    n = len(tr.records)
    model(x).sum().backward()
    assert len(tr.records) == n == 3 and not _observers
    assert all(not r.stats for r in tr.records)
    with pytest.raises(ValueError), trace():
        raise ValueError("the block fails")
    assert not _observers  # removed even then


def test_nested_tracers_both_record():
    x = md.randn(3, requires_grad=True)
    with trace() as outer:
        y = x.exp()
        with trace() as inner:
            y.sum().backward()
    assert [r.op for r in inner.records] == ["Sum", "Sum", "Exp"]
    assert [(r.phase, r.op) for r in outer.records][:2] == [("forward", "Exp"), ("forward", "Sum")]
    assert len(outer.records) == 4


@pytest.mark.filterwarnings("ignore:divide by zero")
def test_detect_anomaly_shows_where_the_failing_op_was_created():
    x = md.tensor([0.0, 4.0], requires_grad=True)
    with md.detect_anomaly():
        y = x.sqrt()  # fine forward; backward 0.5 / sqrt(0) is Inf
        loss = (y * 2).sum()
        with pytest.raises(md.AnomalyError) as info:
            loss.backward()
    message = str(info.value)
    assert message.startswith("Sqrt produced Inf in its gradient (inputs of shapes (2,))")
    assert "Traceback of the forward call that created the op:" in message
    assert "test_trace.py" in message and "y = x.sqrt()" in message
    assert "minidl/tensor.py" not in message.split("created the op:")[1]  # the user's code


def test_no_forward_traceback_is_kept_outside_anomaly_mode():
    y = md.tensor([1.0], requires_grad=True).exp()
    assert not hasattr(y.grad_fn, "_forward_stack")


def test_views_allocate_nothing_and_new_arrays_count_their_bytes():
    x = md.randn(4, 6, requires_grad=True)
    with trace() as tr:
        (x.reshape(6, 4).T * 2).sum()
    assert [(r.op, r.bytes) for r in tr.records] == [
        ("Reshape", 0),
        ("Permute", 0),
        ("Mul", 4 * 6 * 4),  # its output; what it saves are its inputs
        ("Sum", 4),
    ]


def test_ops_run_by_a_create_graph_backward_are_marked_and_counted_once():
    x = md.randn(4, requires_grad=True)
    with trace() as tr:
        (g,) = md.autograd.grad(x.tanh().sum(), x, create_graph=True)
    inside = [r for r in tr.records if r.during]
    assert inside and {r.during for r in inside} <= {"backward of Tanh", "backward of Sum"}
    assert any(r.op == "Mul" and r.during == "backward of Tanh" for r in inside)
    tanh_backward = next(r for r in tr.records if r.phase == "backward" and r.op == "Tanh")
    assert tanh_backward.stats["grad_input 0"][1] == pytest.approx(float(g.mean().item()))
    assert tr.op_seconds() == pytest.approx(sum(r.seconds for r in tr.records if not r.during))
    assert "(backward of Tanh)" in tr.table()


def test_custom_functions_are_traced():
    class Square(md.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return 2 * x * grad

    x = md.randn(3, requires_grad=True)
    with trace() as tr:
        Square.apply(x).sum().backward()
    assert [(r.phase, r.op) for r in tr.records if "Square" in r.op]
