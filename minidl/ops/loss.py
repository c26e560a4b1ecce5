"""Loss functions. Each op gives the loss per element (``reduction="none"``); the
functional wrappers in ``minidl.nn.functional`` reduce it. ``NLL`` reduces itself, since
its mean is weighted by the class weights of the targets."""

from __future__ import annotations

from typing import Any

from minidl.backend import Array
from minidl.ops.activation import sigmoid_array
from minidl.ops.arithmetic import Where
from minidl.ops.broadcasting import broadcast_shape, unbroadcast
from minidl.tensor import Op, Tensor


class PairLoss(Op):
    """A loss of (prediction, target) pairs of the same shape; ``da = -db``."""

    _abstract = True  # a base for the ops below, not an op itself

    def forward(self, a: Array, b: Array) -> Array:
        broadcast_shape(self.name, a.shape, b.shape)
        self.shapes = a.shape, b.shape
        self.save_for_backward(a, b)  # not a - b: under create_graph d must be in the graph
        return self.value(a - b)

    def backward(self, dy: Array | Tensor) -> tuple:
        a, b = self.saved
        g = dy * self.slope(a - b)
        return unbroadcast(g, self.shapes[0]), unbroadcast(-g, self.shapes[1])


class SquaredError(PairLoss):
    """y = (a - b)^2;  da = 2 (a - b) dy"""

    def value(self, d: Any) -> Any:
        return d * d

    def slope(self, d: Any) -> Any:
        return 2 * d


class AbsoluteError(PairLoss):
    """y = |a - b|;  da = sign(a - b) dy  (0 where a = b)"""

    def value(self, d: Any) -> Any:
        return self.xp.abs(d)

    def slope(self, d: Any) -> Any:
        return self.xp.sign(d)


class SmoothL1(PairLoss):
    """y = d^2 / (2 beta) where |d| < beta, else |d| - beta/2  (d = a - b);
    da = d / beta where |d| < beta, else sign(d)"""

    def __init__(self, beta: float = 1.0) -> None:
        if beta < 0:
            raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
        self.beta = beta

    def value(self, d: Any) -> Any:
        ad = self.xp.abs(d)
        if self.beta == 0:
            return ad
        return self.xp.where(ad < self.beta, 0.5 * d * d / self.beta, ad - 0.5 * self.beta)

    def slope(self, d: Any) -> Any:
        if self.beta == 0:
            return self.xp.sign(d)
        return self.xp.where(self.xp.abs(d) < self.beta, d / self.beta, self.xp.sign(d))


class NLL(Op):
    """Negative log-likelihood of class indices, with class weights, ignore_index and
    label smoothing (as ``torch.nn.functional.cross_entropy`` on log-probabilities).

    logp: (N, C, *d), target: (N, *d) ints.  With w = weight[target] (0 where ignored),
    loss_n = -(1 - eps) w_n logp[n, t_n] - eps/C sum_c weight_c logp[n, c];
    "mean" divides the sum by sum_n w_n.  dlogp is the same expression's coefficient."""

    def __init__(
        self,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        self.weight, self.ignore_index = weight, ignore_index
        self.reduction, self.eps = reduction, label_smoothing

    def forward(self, logp: Array, target: Array) -> Array:
        xp = self.xp
        n_classes = logp.shape[1]
        keep = target != self.ignore_index
        safe = xp.where(keep, target, 0)
        if bool((safe < 0).any()) or bool((safe >= n_classes).any()):
            raise IndexError(
                f"nll_loss: target values must be in [0, {n_classes}) or ignore_index "
                f"{self.ignore_index}, got min {int(target.min())} max {int(target.max())}"
            )
        cw = xp.ones(n_classes, dtype=logp.dtype) if self.weight is None else self.weight
        # coef[n, c, *d]: the weight of logp[n, c, *d] in the loss (before the sign).
        picked = xp.expand_dims(safe, 1)
        w = cw[safe] * keep
        coef = xp.zeros(logp.shape, dtype=logp.dtype)
        xp.put_along_axis(coef, picked, xp.expand_dims((1 - self.eps) * w, 1), axis=1)
        if self.eps:
            class_shape = (1, n_classes) + (1,) * (logp.ndim - 2)
            coef += (self.eps / n_classes) * cw.reshape(class_shape) * xp.expand_dims(keep, 1)
        per_item = -(coef * logp).sum(axis=1)
        self.save_for_backward(coef)
        if self.reduction == "none":
            self.scale = None
            return per_item
        self.scale = 1.0 if self.reduction == "sum" else 1.0 / w.sum()
        return per_item.sum() * self.scale

    def backward(self, dy: Array | Tensor) -> tuple:
        (coef,) = self.saved
        if self.scale is None:
            return -coef * self.xp.expand_dims(dy, 1), None
        return -coef * (dy * self.scale), None


class BinaryCrossEntropy(Op):
    """y = -(t log p + (1 - t) log(1 - p)), each log clamped at -100 (as in PyTorch);
    dp = dy (p - t) / max(p (1 - p), 1e-12)"""

    def forward(self, p: Array, t: Array) -> Array:
        if p.shape != t.shape:
            raise ValueError(f"binary_cross_entropy: input {p.shape} and target {t.shape} differ")
        if bool((p < 0).any()) or bool((p > 1).any()):
            raise ValueError("binary_cross_entropy: input values must be in [0, 1]")
        self.save_for_backward(p, t)
        log_p = self.xp.maximum(self.xp.log(p), -100)
        log_q = self.xp.maximum(self.xp.log1p(-p), -100)
        return -(t * log_p + (1 - t) * log_q)

    def backward(self, dy: Array | Tensor) -> tuple:
        p, t = self.saved
        dp = dy * (p - t) / self.xp.maximum(p * (1 - p), 1e-12)
        dt = None
        if self.needs_input_grad[1]:
            dt = dy * (
                self.xp.maximum(self.xp.log1p(-p), -100) - self.xp.maximum(self.xp.log(p), -100)
            )
        return dp, dt


class BinaryCrossEntropyWithLogits(Op):
    """y = -(pw t log s(x) + (1 - t) log(1 - s(x))), s the sigmoid, pw the positive weight;
    computed as (1 - t) x + (1 + (pw - 1) t) (log(1 + exp(-|x|)) + max(-x, 0)), finite for
    any x;  dx = dy (s(x) (pw t + 1 - t) - pw t)"""

    def forward(self, x: Array, t: Array, pos_weight: Array) -> Array:
        broadcast_shape("binary_cross_entropy_with_logits", x.shape, t.shape, pos_weight.shape)
        if x.shape != t.shape:
            raise ValueError(
                f"binary_cross_entropy_with_logits: input {x.shape} and target {t.shape} differ"
            )
        self.save_for_backward(x, t, pos_weight)
        xp = self.xp
        softplus_neg = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)  # = -log s(x)
        return (1 - t) * x + (1 + (pos_weight - 1) * t) * softplus_neg

    def backward(self, dy: Array | Tensor) -> tuple:
        x, t, pw = self.saved
        s = sigmoid_array(x)
        dx = dy * (s * (pw * t + 1 - t) - pw * t)
        dt = None
        if self.needs_input_grad[1]:
            softplus_neg = self.xp.log1p(self.xp.exp(-self.xp.abs(x))) + self.xp.maximum(-x, 0)
            dt = dy * (-x + (pw - 1) * softplus_neg)
        return dx, dt, None

    def reference(self, x: Tensor, t: Tensor, pos_weight: Tensor) -> Tensor:
        softplus_neg = (1 + (-x.abs()).exp()).log() + (-x).relu()
        return (1 - t) * x + (1 + (pos_weight - 1) * t) * softplus_neg


class KLDiv(Op):
    """y = p (log p - x), p the target (0 where p = 0), x = log q the input;
    dx = -p dy;  dp = (log p + 1 - x) dy.  With ``log_target`` the target is log p:
    y = exp(lp) (lp - x), dlp = exp(lp) (lp - x + 1) dy."""

    def __init__(self, log_target: bool = False) -> None:
        self.log_target = log_target

    def forward(self, x: Array, target: Array) -> Array:
        broadcast_shape("kl_div", x.shape, target.shape)
        xp = self.xp
        if self.log_target:
            p, log_p = xp.exp(target), target
        else:
            p = target
            log_p = xp.log(xp.where(p > 0, p, 1))
        self.save_for_backward(p, log_p, x)
        self.shapes = x.shape, target.shape
        return p * (log_p - x)

    def backward(self, dy: Array | Tensor) -> tuple:
        p, log_p, x = self.saved
        dx = unbroadcast(-p * dy, self.shapes[0])
        dt = None
        if self.needs_input_grad[1]:
            dt = unbroadcast(
                dy * p * (log_p - x + 1) if self.log_target else dy * (log_p + 1 - x) * (p > 0),
                self.shapes[1],
            )
        return dx, dt

    def reference(self, x: Tensor, target: Tensor) -> Tensor:
        if self.log_target:
            return target.exp() * (target - x)
        positive, ones = Tensor(target.data > 0), Tensor(self.xp.ones_like(target.data))
        return target * (Where()(positive, target, ones).log() - x)


class GaussianKL(Op):
    """KL(N(mu, exp(logvar)) || N(0, 1)) per element, the VAE's regulariser:
    y = -1/2 (1 + logvar - mu^2 - exp(logvar));  dmu = mu dy,
    dlogvar = 1/2 (exp(logvar) - 1) dy"""

    def forward(self, mu: Array, logvar: Array) -> Array:
        if mu.shape != logvar.shape:
            raise ValueError(f"gaussian_kl: mu {mu.shape} and logvar {logvar.shape} differ")
        var = self.xp.exp(logvar)
        self.save_for_backward(mu, var)
        return -0.5 * (1 + logvar - mu * mu - var)

    def backward(self, dy: Array | Tensor) -> tuple:
        mu, var = self.saved
        return mu * dy, 0.5 * (var - 1) * dy

    def reference(self, mu: Tensor, logvar: Tensor) -> Tensor:
        return -0.5 * (1 + logvar - mu * mu - logvar.exp())
