"""minidl: a from-scratch deep-learning engine written to be read.

``Tensor`` and autograd live in ``minidl.tensor``, the ops in ``minidl.ops`` (one file per
family), the NumPy/CuPy switch in ``minidl.backend``, gradient checking in
``minidl.gradcheck``. Names follow PyTorch: ``minidl.tensor``, ``minidl.no_grad``,
``minidl.nn.functional``...
"""

from minidl.gradcheck import gradcheck
from minidl.serialization import SerializationError, load, save
from minidl.tensor import (
    AnomalyError,
    Function,
    Tensor,
    as_tensor,
    bool_,
    detect_anomaly,
    enable_grad,
    float16,
    float32,
    float64,
    from_numpy,
    int8,
    int16,
    int32,
    int64,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
    tensor,
    uint8,
)
from minidl.tensor_functions import (
    abs,
    allclose,
    arange,
    cat,
    clamp,
    clip,
    concat,
    concatenate,
    exp,
    eye,
    flatten,
    full,
    linspace,
    log,
    logsumexp,
    manual_seed,
    matmul,
    maximum,
    mean,
    minimum,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    sqrt,
    stack,
    sum,
    where,
    zeros,
    zeros_like,
)

__version__ = "0.1.0"
