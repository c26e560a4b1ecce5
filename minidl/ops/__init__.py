"""The ops, one file per family. Each op is an ``Op`` (minidl/tensor.py) with ``forward`` and
``backward`` side by side; ``minidl.nn.functional`` and ``Tensor`` methods call them."""

from minidl.ops import (
    activation,
    arithmetic,
    conv,
    dropout,
    embedding,
    linalg,
    linear,
    loss,
    normalization,
    pool,
    quant,
    reduce,
    resample,
    rnn,
    shape,
)

__all__ = [
    "activation",
    "arithmetic",
    "conv",
    "dropout",
    "embedding",
    "linalg",
    "linear",
    "loss",
    "normalization",
    "pool",
    "quant",
    "reduce",
    "resample",
    "rnn",
    "shape",
]
