"""Gradient clipping and parameter flattening, as in ``torch.nn.utils``.

The clipping functions change ``p.grad`` in place on the raw arrays (no graph), between
``loss.backward()`` and ``optimizer.step()``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from minidl import backend
from minidl.tensor import Tensor
from minidl.tensor_functions import cat, tensor

TensorsT = Tensor | Iterable[Tensor]


def _as_list(tensors: TensorsT) -> list[Tensor]:
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def get_total_norm(
    tensors: TensorsT,
    norm_type: float | str = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Tensor:
    """The ``norm_type``-norm of all ``tensors`` together, as if concatenated into one
    vector: ``(sum_i ||t_i||_p ** p) ** (1/p)``; ``inf`` gives ``max_i max |t_i|``.

    Returns a 0-d tensor (0 for no tensors). ``foreach`` is accepted for PyTorch
    compatibility (there is one code path)."""
    arrays = [t.data for t in _as_list(tensors)]
    if not arrays:
        return tensor(0.0)
    ord = float(norm_type)
    xp = backend.get_array_module(arrays[0])
    norms = xp.stack([xp.linalg.norm(a.ravel(), ord=ord) for a in arrays])
    total = xp.asarray(xp.linalg.norm(norms, ord=ord))
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(
            f"the total norm of order {ord} of the gradients is {float(total)}, so they cannot "
            "be clipped; pass error_if_nonfinite=False to scale them by it anyway"
        )
    return Tensor(total)


def clip_grads_with_norm_(
    parameters: TensorsT,
    max_norm: float,
    total_norm: Tensor | float,
    foreach: bool | None = None,
) -> None:
    """Scale every gradient by ``max_norm / (total_norm + 1e-6)`` when that is below 1."""
    coef = float(max_norm) / (float(total_norm) + 1e-6)
    if not (coef < 1.0 or math.isnan(coef)):  # a NaN norm scales too, as in PyTorch
        return
    for p in _as_list(parameters):
        if p.grad is not None:
            g = p.grad.data
            backend.get_array_module(g).multiply(g, coef, out=g)


def clip_grad_norm_(
    parameters: TensorsT,
    max_norm: float,
    norm_type: float | str = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Tensor:
    """Rescale the gradients of ``parameters`` in place so that their total
    ``norm_type``-norm is at most ``max_norm``: each ``g *= max_norm / (total + 1e-6)``
    when ``total > max_norm``. Returns the total norm before clipping (a 0-d tensor).

    ``error_if_nonfinite`` raises on a NaN or Inf total instead of scaling by it."""
    parameters = _as_list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    if grads:
        clip_grads_with_norm_(parameters, max_norm, total)
    return total


def clip_grad_value_(parameters: TensorsT, clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient of ``parameters`` to ``[-clip_value, clip_value]`` in place."""
    clip_value = float(clip_value)
    for p in _as_list(parameters):
        if p.grad is not None:
            g = p.grad.data
            backend.get_array_module(g).clip(g, -clip_value, clip_value, out=g)


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All ``parameters`` flattened and concatenated into one vector (differentiable)."""
    return cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Point each parameter's data at its slice of ``vec`` (the inverse of
    ``parameters_to_vector``; the parameters share memory with ``vec``, as in PyTorch)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected a Tensor, got {type(vec).__name__}")
    if vec.ndim != 1:
        raise ValueError(f"vector_to_parameters: expected a 1-d vector, got shape {vec.shape}")
    parameters = list(parameters)
    needed = sum(p.numel() for p in parameters)
    if vec.numel() != needed:
        raise ValueError(
            f"vector_to_parameters: vector of {vec.numel()} values for parameters of "
            f"{needed} values in all"
        )
    start = 0
    for p in parameters:
        n = p.numel()
        p.data = vec.data[start : start + n].reshape(p.shape)
        p._bump_version()
        start += n


from minidl.nn.utils import rnn  # noqa: E402  (nn.utils.rnn, as in PyTorch)
