"""``minidl.nn.functional`` (imported as ``F``): the ops under PyTorch's names and
signatures. Each function validates its arguments and calls one op (or a few)."""

from __future__ import annotations

from typing import Any

from minidl.ops import activation, loss
from minidl.tensor import Tensor, _constant

_REDUCTIONS = ("none", "mean", "sum")


# --------------------------------------------------------------------- activations
def relu(x: Tensor) -> Tensor:
    return activation.ReLU()(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    return activation.LeakyReLU(negative_slope)(x)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    return activation.ELU(alpha)(x)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    return activation.GELU(approximate)(x)


def sigmoid(x: Tensor) -> Tensor:
    return activation.Sigmoid()(x)


def tanh(x: Tensor) -> Tensor:
    return activation.Tanh()(x)


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    return activation.Softplus(beta, threshold)(x)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    return activation.Softmax(dim)(x)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    return activation.LogSoftmax(dim)(x)


# --------------------------------------------------------------------- shape
def pad(x: Tensor, pad: tuple[int, ...], mode: str = "constant", value: float = 0.0) -> Tensor:
    """PyTorch's order: ``pad = (left, right)`` for the last dim, then the one before..."""
    from minidl.ops.shape import Pad

    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r}; only 'constant' is implemented")
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: {pad} must hold (before, after) pairs for at most {x.ndim} dims")
    pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
    widths = [(0, 0)] * (x.ndim - len(pairs)) + pairs[::-1]
    return Pad(widths, value)(x)


# --------------------------------------------------------------------- losses
def _reduce(per_item: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "none":
        return per_item
    if reduction == "sum":
        return per_item.sum()
    if reduction == "mean":
        return per_item.mean()
    if reduction == "batchmean":
        return per_item.sum() / per_item.shape[0]
    raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_same_shape(op: str, input: Tensor, target: Any) -> None:
    shape = target.shape if hasattr(target, "shape") else ()
    if tuple(shape) != input.shape:
        raise ValueError(f"{op}: input shape {input.shape} and target shape {tuple(shape)} differ")


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    _check_same_shape("mse_loss", input, target)
    return _reduce(loss.SquaredError()(input, target), reduction, "mse_loss")


def l1_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    _check_same_shape("l1_loss", input, target)
    return _reduce(loss.AbsoluteError()(input, target), reduction, "l1_loss")


def smooth_l1_loss(
    input: Tensor, target: Any, reduction: str = "mean", beta: float = 1.0
) -> Tensor:
    _check_same_shape("smooth_l1_loss", input, target)
    return _reduce(loss.SmoothL1(beta)(input, target), reduction, "smooth_l1_loss")


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """input: (N, C) or (N, C, d1, ...) log-probabilities, or (C,);
    target: (N,) or (N, d1, ...) class indices, or ()."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"nll_loss: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if input.ndim == 1:
        input, target = input.unsqueeze(0), target.reshape(1)
        out = nll_loss(input, target, weight, ignore_index, reduction, label_smoothing)
        return out.reshape(()) if reduction == "none" else out
    if target.dtype.kind not in "iu":
        raise TypeError(f"nll_loss: target must hold class indices (ints), got {target.dtype}")
    expected = (input.shape[0], *input.shape[2:])
    if target.shape != expected:
        raise ValueError(
            f"nll_loss: target shape {target.shape} does not match input {input.shape} "
            f"(expected {expected})"
        )
    if weight is not None and weight.shape != (input.shape[1],):
        raise ValueError(f"nll_loss: weight shape {weight.shape}, expected ({input.shape[1]},)")
    w = None if weight is None else _constant(weight.data, input)
    return loss.NLL(w, ignore_index, reduction, label_smoothing)(input, target)


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy from logits. input: (N, C, *d); target: class indices
    (N, *d), or class probabilities of the input's shape."""
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    dim = 0 if input.ndim == 1 else 1
    logp = log_softmax(input, dim=dim)
    if target.dtype.kind == "f":  # soft targets: -sum_c w_c p_c log q_c
        _check_same_shape("cross_entropy", input, target)
        p = target * (1 - label_smoothing) + label_smoothing / input.shape[dim]
        if weight is not None:
            shape = [1] * input.ndim
            shape[dim] = input.shape[dim]
            p = p * weight.reshape(*shape)
        per_item = -(p * logp).sum(dim)
        if reduction == "mean":
            return per_item.sum() / (input.shape[0] if input.ndim > 1 else 1)
        return _reduce(per_item, reduction, "cross_entropy")
    return nll_loss(logp, target, weight, ignore_index, reduction, label_smoothing)


def binary_cross_entropy(
    input: Tensor, target: Any, weight: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """input: probabilities in [0, 1]; target: the same shape."""
    _check_same_shape("binary_cross_entropy", input, target)
    per_item = loss.BinaryCrossEntropy()(input, target)
    if weight is not None:
        per_item = per_item * weight
    return _reduce(per_item, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Any,
    weight: Tensor | None = None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable op (finite at logits of +/-1000)."""
    _check_same_shape("binary_cross_entropy_with_logits", input, target)
    pw = 1.0 if pos_weight is None else pos_weight
    per_item = loss.BinaryCrossEntropyWithLogits()(input, target, pw)
    if weight is not None:
        per_item = per_item * weight
    return _reduce(per_item, reduction, "binary_cross_entropy_with_logits")


def kl_div(input: Tensor, target: Any, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """KL(target || q) with ``input`` = log q. Use ``reduction="batchmean"`` for the true
    KL divergence per sample; "mean" averages over every element, as in PyTorch."""
    return _reduce(loss.KLDiv(log_target)(input, target), reduction, "kl_div")


def gaussian_kl(mu: Tensor, logvar: Tensor, reduction: str = "batchmean") -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), the VAE regulariser. mu, logvar: (N, D).
    "batchmean" sums over the latent dims and averages over the batch."""
    return _reduce(loss.GaussianKL()(mu, logvar), reduction, "gaussian_kl")
