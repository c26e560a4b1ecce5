"""Gradient-check cases for the basic layers: linear, normalisation, dropout, embedding.

A layer case builds the layer once (float64) and checks the gradients with respect to the
input and the parameters: ``_layer_fn`` returns fn(x, *params) that puts the checked
parameter tensors into the layer before calling it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import minidl as md
from minidl import backend
from minidl import nn as _nn
from minidl.gradient_check.registry import normal, register, with_ints
from minidl.nn import functional as F
from minidl.ops.dropout import Dropout


def _layer_fn(layer: _nn.Module, names: tuple[str, ...]) -> Callable[..., md.Tensor]:
    layer.double()

    def fn(x: md.Tensor, *params: md.Tensor) -> md.Tensor:
        for name, p in zip(names, params):
            layer._parameters[name] = p
        return layer(x)

    return fn


def _bn_eval(layer: _nn.Module) -> _nn.Module:
    """A BatchNorm in evaluation mode with running statistics away from (0, 1)."""
    rng = np.random.default_rng(0)
    n = layer.num_features
    layer.load_state_dict(
        {
            "weight": np.ones(n),
            "bias": np.zeros(n),
            "running_mean": rng.standard_normal(n),
            "running_var": rng.uniform(0.5, 2.0, n),
            "num_batches_tracked": np.array(5),
        }
    )
    return layer.eval()


_WB = ("weight", "bias")

# linear
register("linear", F.linear, normal((2, 3, 4), (5, 4), (5,)))
register("linear no bias, 1-D input", F.linear, normal((4,), (3, 4)))
register("Linear layer", _layer_fn(_nn.Linear(4, 3), _WB), normal((5, 4), (3, 4), (3,)))

# normalisation
register(
    "batch_norm training, no running stats",
    lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
    normal((4, 3, 2), (3,), (3,)),
)
register(
    "BatchNorm2d training", _layer_fn(_nn.BatchNorm2d(3), _WB), normal((3, 3, 2, 2), (3,), (3,))
)
register(
    "BatchNorm1d training (N, C)", _layer_fn(_nn.BatchNorm1d(3), _WB), normal((5, 3), (3,), (3,))
)
register(
    "BatchNorm1d training, no affine",
    _layer_fn(_nn.BatchNorm1d(2, affine=False), ()),
    normal((3, 2, 4)),
)
register(
    "BatchNorm2d eval",
    _layer_fn(_bn_eval(_nn.BatchNorm2d(3)), _WB),
    normal((2, 3, 2, 2), (3,), (3,)),
)
register(
    "BatchNorm3d training", _layer_fn(_nn.BatchNorm3d(2), _WB), normal((2, 2, 2, 1, 2), (2,), (2,))
)
register(
    "layer_norm",
    lambda x, w, b: F.layer_norm(x, (3, 4), w, b),
    normal((2, 3, 4), (3, 4), (3, 4)),
)
register(
    "LayerNorm layer, no bias",
    _layer_fn(_nn.LayerNorm(5, bias=False), ("weight",)),
    normal((3, 5), (5,)),
)
register(
    "layer_norm bias only",
    lambda x, b: F.layer_norm(x, 4, bias=b),
    normal((3, 4), (4,)),
)

# dropout: the mask is fixed (a setting, not an input), so the op is linear in x.
_MASK = (np.random.default_rng(0).random((3, 4)) > 0.4) / 0.6
register(
    "dropout op (fixed mask)",
    lambda x: Dropout(backend.to_device(_MASK, x.device))(x),
    normal((3, 4)),
)


def _seeded(fn: Callable[[md.Tensor], md.Tensor]) -> Callable[[md.Tensor], md.Tensor]:
    """Reseed before each call, so that every evaluation draws the same mask."""

    def call(x: md.Tensor) -> md.Tensor:
        md.manual_seed(0)
        return fn(x)

    return call


register("dropout p=0.3 (seeded)", _seeded(lambda x: F.dropout(x, 0.3)), normal((4, 5)))
register("dropout2d p=0.5 (seeded)", _seeded(lambda x: F.dropout2d(x, 0.5)), normal((2, 3, 2, 2)))

# embedding: gradients for the table only (indices are ints). padding_idx and
# scale_grad_by_freq change the gradient on purpose (it is no longer the derivative), so
# the check uses indices that avoid the padding row (whose gradient must be 0 either way);
# tests/nn/test_embedding.py compares both options with PyTorch.
register(
    "embedding repeated indices",
    lambda w, i: F.embedding(i, w, padding_idx=1),
    with_ints(normal((5, 3)), lambda r: np.array([[0, 2, 3], [3, 3, 0]])),
)
register(
    "Embedding layer",
    _layer_fn(_nn.Embedding(6, 2), ("weight",)),
    lambda r: [r.integers(0, 6, (3, 4)), r.standard_normal((6, 2))],
)

# losses added with the loss layers
register(
    "huber_loss",
    lambda a, b: F.huber_loss(a, b, delta=0.7),
    lambda r: [np.linspace(-2, 2, 8) + 0.13, np.zeros(8)],
)


# DataParallel: a conv-BatchNorm-Linear network on a batch of 5 cut into 2 parts on two
# threads (whatever the thread count of the run), so the parts' BatchNorm exchanges its
# sums between the threads; second order recomputes the whole batch (see its module).
_PARALLEL_NET = _nn.Sequential(
    _nn.Conv2d(2, 3, 3, padding=1),
    _nn.BatchNorm2d(3, track_running_stats=False),
    _nn.Tanh(),
    _nn.Flatten(),
    _nn.Linear(3 * 4 * 4, 2),
).double()
_PARALLEL_NAMES = [name for name, _ in _PARALLEL_NET.named_parameters()]


def _data_parallel(x: md.Tensor, *params: md.Tensor) -> md.Tensor:
    for name, p in zip(_PARALLEL_NAMES, params):
        index, attr = name.split(".")
        _PARALLEL_NET[int(index)]._parameters[attr] = p
    threads = md.get_num_threads()
    md.set_num_threads(2)
    try:
        return _nn.DataParallel(_PARALLEL_NET)(x)
    finally:
        md.set_num_threads(threads)


register(
    "DataParallel (conv, BatchNorm, Linear; 2 threads)",
    _data_parallel,
    normal((5, 2, 4, 4), *(p.shape for p in _PARALLEL_NET.parameters())),
)
