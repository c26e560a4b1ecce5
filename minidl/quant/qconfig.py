"""``QConfig``: which observer or fake-quantizer watches activations and which watches
weights, as factories (``Observer.with_args(...)``), as in PyTorch.

Defaults (PyTorch's x86/fbgemm choices, minus ``reduce_range``):
- activations quint8 affine per tensor (the whole [0, 255] on the observed [min, max]);
- weights qint8 symmetric, per output channel (zero point 0, so (wq - zw) = wq).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from minidl.quant.affine import (
    per_channel_symmetric,
    per_tensor_affine,
    per_tensor_symmetric,
    qint8,
    quint8,
)
from minidl.quant.observers import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PercentileObserver,
    PerChannelMinMaxObserver,
)
from minidl.quant.qat import FakeQuantize, LearnableFakeQuantize


class QConfig(NamedTuple):
    """Factories of the activation and weight observers (or fake-quantizers)."""

    activation: Callable[[], Any]
    weight: Callable[[], Any]


default_observer = MinMaxObserver.with_args(dtype=quint8, qscheme=per_tensor_affine)
default_weight_observer = MinMaxObserver.with_args(dtype=qint8, qscheme=per_tensor_symmetric)
default_per_channel_weight_observer = PerChannelMinMaxObserver.with_args(
    dtype=qint8, qscheme=per_channel_symmetric
)

default_qconfig = QConfig(activation=default_observer, weight=default_weight_observer)
default_per_channel_qconfig = QConfig(
    activation=default_observer, weight=default_per_channel_weight_observer
)
percentile_qconfig = QConfig(
    activation=PercentileObserver.with_args(percentile=99.99, dtype=quint8),
    weight=default_per_channel_weight_observer,
)
default_qat_qconfig = QConfig(
    activation=FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, dtype=quint8),
    weight=FakeQuantize.with_args(
        observer=MovingAveragePerChannelMinMaxObserver, dtype=qint8, qscheme=per_channel_symmetric
    ),
)
lsq_qat_qconfig = QConfig(
    activation=LearnableFakeQuantize.with_args(observer=MovingAverageMinMaxObserver, dtype=quint8),
    weight=LearnableFakeQuantize.with_args(
        observer=PerChannelMinMaxObserver, dtype=qint8, qscheme=per_channel_symmetric
    ),
)
default_dynamic_qconfig = QConfig(activation=default_observer, weight=default_weight_observer)
per_channel_dynamic_qconfig = QConfig(
    activation=default_observer, weight=default_per_channel_weight_observer
)
