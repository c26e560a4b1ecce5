"""summary(model, input_size | input): rows in call order with output shapes and the
parameters each module owns, totals that match the model, the model left untouched, and
errors that name the layer that failed."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as md
from minidl import nn
from minidl.nn.summary import summary


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.body = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout())
        self.head = nn.Linear(16, 3)

    def forward(self, idx):
        return self.head(self.body(self.embed(idx).mean(1)))


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 2), nn.Linear(6, 2)

    def forward(self, x, y):
        return self.a(x), self.b(y)


def test_rows_shapes_and_parameter_counts():
    model = Net()
    model.embed.weight.requires_grad_(False)
    result = summary(model, (4, 7), dtype=md.int64, verbose=0)
    rows = [(r.name, r.kind, r.depth, r.output_shape, r.num_params) for r in result.rows]
    assert rows == [
        ("", "Net", 0, (4, 3), 0),
        ("embed", "Embedding", 1, (4, 7, 8), 400),
        ("body", "Sequential", 1, (4, 16), 0),
        ("body.0", "Linear", 2, (4, 16), 8 * 16 + 16),
        ("body.1", "BatchNorm1d", 2, (4, 16), 32),
        ("body.2", "ReLU", 2, (4, 16), 0),
        ("body.3", "Dropout", 2, (4, 16), 0),
        ("head", "Linear", 1, (4, 3), 16 * 3 + 3),
    ]
    total = sum(p.numel() for p in model.parameters())
    assert result.total_params == total == sum(r.num_params for r in result.rows)
    assert result.trainable_params == total - 400 and result.non_trainable_params == 400
    assert result.param_bytes == 4 * total and result.input_shapes == [(4, 7)]
    assert result.output_shape == (4, 3)


def test_table_text_and_printing(capsys):
    result = summary(Net(), (2, 5), dtype="int64")
    printed = capsys.readouterr().out
    assert printed.strip() == str(result).strip()
    lines = printed.splitlines()
    assert lines[1].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#"]
    assert any(line.split() == ["body.0", "(Linear)", "[2,", "16]", "144"] for line in lines)
    assert "Total params: 627" in printed and "Non-trainable params: 0" in printed
    assert repr(result) == "ModelSummary(layers=8, total_params=627, trainable_params=627)"
    summary(Net(), (2, 5), dtype="int64", verbose=0)
    assert capsys.readouterr().out == ""


def test_the_model_is_left_as_it_was():
    model = Net()
    model.body[3].eval()  # a mixed state must come back exactly
    summary(model, (3, 4), dtype=md.int64, verbose=0)
    assert model.training and model.body[0].training and not model.body[3].training
    bn = model.body[1]
    np.testing.assert_array_equal(bn.running_mean.numpy(), np.zeros(16))
    assert bn.num_batches_tracked.item() == 0
    assert all("forward" not in m.__dict__ for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_example_inputs_several_inputs_and_tuple_outputs():
    result = summary(TwoInputs(), input=(md.randn(3, 4), md.randn(3, 6)), verbose=0)
    assert result.output_shape == [(3, 2), (3, 2)]
    assert result.rows[0].output_shape == [(3, 2), (3, 2)]
    assert "[[3, 2], [3, 2]]" in str(result)
    from_sizes = summary(TwoInputs(), [(5, 4), (5, 6)], verbose=0)
    assert from_sizes.input_shapes == [(5, 4), (5, 6)]
    assert summary(nn.Linear(4, 2), input=md.randn(1, 4), verbose=0).total_params == 10


def test_float64_inputs_and_argument_errors():
    model = nn.Linear(3, 2).double()
    assert summary(model, (2, 3), dtype=md.float64, verbose=0).input_shapes == [(2, 3)]
    with pytest.raises(ValueError, match="exactly one of input_size and input"):
        summary(model, verbose=0)
    with pytest.raises(ValueError, match="exactly one of input_size and input"):
        summary(model, (2, 3), input=md.randn(2, 3), verbose=0)


def test_a_failing_layer_is_named_and_the_model_restored():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(5, 2))
    with pytest.raises(ValueError, match="linear: input of shape") as info:
        summary(model, (2, 4), verbose=0)
    assert info.value.__notes__ == ["summary: raised in 1 (Linear)"]
    assert all("forward" not in m.__dict__ for m in model.modules())
