"""Matrix products."""

from __future__ import annotations

from minidl.backend import Array
from minidl.ops.broadcasting import broadcast_shape, check_same_dtype, unbroadcast
from minidl.tensor import Op, Tensor


class MatMul(Op):
    """y = a @ b  (NumPy/PyTorch matmul: batched, broadcast, 1-D operands promoted)

    a: (..., n, k), b: (..., k, m) -> y: (..., n, m);  da = dy @ b^T,  db = a^T @ dy.
    A 1-D ``a`` is a row (1, k) and a 1-D ``b`` a column (k, 1), squeezed from the result.
    """

    def forward(self, a: Array, b: Array) -> Array:
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both operands need a dim, got shapes {a.shape}, {b.shape}")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(
                f"matmul: shapes {a.shape} and {b.shape} do not match "
                f"({a.shape[-1]} != {b.shape[-2 if b.ndim > 1 else 0]})"
            )
        if a.ndim > 2 or b.ndim > 2:
            broadcast_shape("matmul", a.shape[:-2], b.shape[:-2])
        check_same_dtype("matmul", a=a, b=b)
        self.save_for_backward(a, b)
        return a @ b

    def backward(self, dy: Array | Tensor) -> tuple:
        a, b = self.saved
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        batch = broadcast_shape("matmul", a2.shape[:-2], b2.shape[:-2])
        dy2 = dy.reshape((*batch, a2.shape[-2], b2.shape[-1]))  # dims of 1-D operands back
        da = db = None
        if self.needs_input_grad[0]:
            da = unbroadcast(dy2 @ b2.swapaxes(-1, -2), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            db = unbroadcast(a2.swapaxes(-1, -2) @ dy2, b2.shape).reshape(b.shape)
        return da, db
