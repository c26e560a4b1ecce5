"""minidl: a from-scratch deep-learning engine written to be read.

The autograd engine and ``Tensor``'s core live in ``minidl/tensor.py``, Tensor's methods in
``minidl/tensor_methods.py``, the ops in ``minidl.ops`` (one file per family), the
NumPy/CuPy switch in ``minidl.backend``, gradient checking in ``minidl.gradient_check``
(the function is ``minidl.gradcheck``). Names follow PyTorch: ``minidl.tensor``,
``minidl.no_grad``, ``minidl.nn.functional``...
"""

from minidl import tensor_methods  # installs Tensor's methods before anything uses them
from minidl.gradient_check import gradcheck
from minidl.serialization import SerializationError, load, save
from minidl.tensor import (
    AnomalyError,
    Tensor,
    bool_,
    detect_anomaly,
    enable_grad,
    float16,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
    uint8,
)
from minidl.tensor_functions import (
    abs,
    allclose,
    arange,
    as_tensor,
    cat,
    clamp,
    clip,
    concat,
    concatenate,
    exp,
    eye,
    flatten,
    from_numpy,
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
    tensor,
    where,
    zeros,
    zeros_like,
)

__version__ = "0.1.0"
