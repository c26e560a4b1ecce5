"""The affine map of a fully connected layer, fused into one op.

One op instead of ``matmul`` + ``transpose`` + ``add`` saves two graph nodes and two
temporaries per layer, and lets the weight gradient be a single matrix product over the
flattened leading dims.
"""

from __future__ import annotations

from minidl import parallel
from minidl.backend import Array
from minidl.ops.broadcasting import check_same_dtype
from minidl.tensor import Op, Tensor


class Linear(Op):
    """y = x @ W^T + b

    x: (*, in), W: (out, in), b: (out,) (optional) -> y: (*, out).
    With the leading dims flattened (x2: (M, in), dy2: (M, out)):
    dx = dy @ W;  dW = dy2^T @ x2  (summed over the leading dims);  db = sum_M dy2.
    """

    def forward(self, x: Array, weight: Array, bias: Array | None = None) -> Array:
        _check(x.shape, weight.shape, None if bias is None else bias.shape)
        check_same_dtype("linear", input=x, weight=weight, bias=bias)
        x2 = x.reshape(-1, weight.shape[1])
        y = parallel.matmul(self.xp, x2, weight.T)
        if bias is not None:
            y += bias
        self.save_for_backward(x2, weight)
        self.x_shape = x.shape
        return y.reshape(*x.shape[:-1], weight.shape[0])

    def backward(self, dy: Array | Tensor) -> tuple:
        x2, weight = self.saved
        dy2 = dy.reshape(-1, weight.shape[0])
        dx = dw = db = None
        if self.needs_input_grad[0]:
            dx = parallel.matmul(self.xp, dy2, weight).reshape(self.x_shape)
        if self.needs_input_grad[1]:
            dw = parallel.matmul(self.xp, dy2.T, x2)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            db = dy2.sum(axis=0)
        return dx, dw, db

    def reference(self, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        y = x @ weight.T
        return y if bias is None else y + bias


def _check(x: tuple, w: tuple, b: tuple | None) -> None:
    if len(w) != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got {w}")
    if len(x) == 0 or x[-1] != w[1]:
        raise ValueError(
            f"linear: input of shape {x} does not match weight of shape {w} "
            f"(expected input (*, {w[1]}))"
        )
    if b is not None and b != (w[0],):
        raise ValueError(f"linear: bias of shape {b}, expected ({w[0]},) for weight {w}")
