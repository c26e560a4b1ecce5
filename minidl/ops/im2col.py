"""Sliding windows over the spatial axes of (N, C, *S) arrays, shared by convolution and
pooling.

Along one spatial axis of size S, padded by ``lo`` before and ``hi`` after, the window at
output position p with kernel offset j reads padded index ``p * stride + j * dilation``;
there are ``O = (S + lo + hi - dilation * (k - 1) - 1) // stride + 1`` positions.

Two views of the same windows, neither a Python loop over output positions:
- ``im2col`` builds every window at once as a strided view (``as_strided``) and copies it
  into the column matrix of a convolution: (C, *k, *O, N), which reshapes for free into
  (groups, C/groups * prod(k), prod(O) * N), the right operand of one matmul per group.
- ``offset_slices`` gives, for each kernel offset j, the strided slice of the padded input
  that offset j reads at every output position: pooling reduces over these slices and
  ``col2im`` (the adjoint of ``im2col``) adds gradients back through them, one slice per
  kernel offset.

Layout: the buffers made here hold (N, C, *S) values stored as (C, *S, N), batch last
(``spatial_buffer``). The column matrix is stored so too, so a convolution's output and
input gradient come out in that layout with no transposing copy, and the ops that follow
(elementwise ops keep their input's memory order) hand it on. Along the last spatial axis
and the batch, a stride-1 window is then one contiguous run of O * N values, so the
copies into the columns, the adds of ``col2im`` and pooling's reductions move long runs
instead of rows of a few elements. Any input layout works; this one is the fast one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Windows:
    """The windows of a sliding op along each spatial axis: kernel size, stride, dilation,
    padding ``(before, after)`` and the resulting output size."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    out: tuple[int, ...]

    @property
    def span(self) -> tuple[int, ...]:
        """Extent of one dilated window: d (k - 1) + 1."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation))

    @property
    def padded(self) -> bool:
        return any(lo or hi for lo, hi in self.pads)

    @property
    def disjoint(self) -> bool:
        """True when no two windows share an input element (e.g. stride == kernel)."""
        return all(s >= w for s, w in zip(self.stride, self.span))

    def tiles(self, size: tuple[int, ...]) -> bool:
        """True when the windows cover the unpadded input exactly once (disjoint windows,
        no gaps, no padding, nothing left over)."""
        return not self.padded and all(
            s == k and d == 1 and o * s == n
            for s, k, d, o, n in zip(self.stride, self.kernel, self.dilation, self.out, size)
        )

    def padded_size(self, size: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(s + lo + hi for s, (lo, hi) in zip(size, self.pads))


def windows(
    op: str,
    size: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    pads: tuple[tuple[int, int], ...],
) -> Windows:
    """The ``Windows`` of an op over spatial ``size``; raises naming ``op`` when the
    (padded) input is smaller than one dilated kernel or a setting is out of range. The one
    place this is checked: a layer passes its own name as ``op``."""
    if any(k < 1 for k in kernel) or any(s < 1 for s in stride) or any(d < 1 for d in dilation):
        raise ValueError(
            f"{op}: kernel size {kernel}, stride {stride} and dilation {dilation} must be positive"
        )
    if any(lo < 0 or hi < 0 for lo, hi in pads):
        raise ValueError(f"{op}: padding must be non-negative, got {pads}")
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    padded = [s + lo + hi for s, (lo, hi) in zip(size, pads)]
    if any(p < w for p, w in zip(padded, spans)):
        dilated = f" (dilated: {tuple(spans)})" if tuple(spans) != tuple(kernel) else ""
        raise ValueError(
            f"{op}: input spatial size {tuple(size)} (padded: {tuple(padded)}) is smaller "
            f"than the kernel {tuple(kernel)}{dilated}"
        )
    out = tuple((p - w) // s + 1 for p, w, s in zip(padded, spans, stride))
    return Windows(tuple(kernel), tuple(stride), tuple(dilation), tuple(pads), out)


def batch_last(x: Any) -> Any:
    """(N, C, *S) -> (C, *S, N), a view."""
    return x.transpose((*range(1, x.ndim), 0))


def batch_first(x: Any) -> Any:
    """(C, *S, N) -> (N, C, *S), a view."""
    return x.transpose((x.ndim - 1, *range(x.ndim - 1)))


def to_batch_last(xp: Any, x: Any, contiguous: bool = True) -> Any:
    """x (N, C, *S) stored batch last: x itself if it is, else one copy. Without
    ``contiguous``, a view in batch-last order (e.g. cropped from a padded buffer) will do."""
    stored = batch_last(x)
    if not contiguous:
        strides = [st for st, n in zip(stored.strides, stored.shape) if n > 1]
        if all(a >= b for a, b in itertools.pairwise(strides)):
            return x
    return batch_first(xp.ascontiguousarray(stored))


def spatial_buffer(xp: Any, shape: tuple[int, ...], dtype: Any, fill: float | None) -> Any:
    """An (N, C, *S) array stored as (C, *S, N): filled with ``fill``, or uninitialised."""
    stored = (*shape[1:], shape[0])
    if fill is None:
        return batch_first(xp.empty(stored, dtype=dtype))
    return batch_first(xp.full(stored, fill, dtype=dtype))


def interior(win: Windows, size: tuple[int, ...]) -> tuple[slice, ...]:
    """The index of the unpadded input inside a padded (N, C, *P) array."""
    return (slice(None), slice(None), *(slice(lo, lo + s) for s, (lo, _) in zip(size, win.pads)))


def pad(xp: Any, x: Any, win: Windows, fill: float = 0.0) -> Any:
    """x: (N, C, *S) -> (N, C, *P) with ``fill`` in the padding, stored batch last (``x``
    itself if it is so stored and there is no padding)."""
    if not win.padded:
        return to_batch_last(xp, x, contiguous=False)
    n, c, *size = x.shape
    out = spatial_buffer(xp, (n, c, *win.padded_size(tuple(size))), x.dtype, None)
    out[interior(win, tuple(size))] = x
    for axis, (lo, hi) in enumerate(win.pads, start=2):  # fill only the border
        before = (slice(None),) * axis
        out[(*before, slice(0, lo))] = fill
        out[(*before, slice(out.shape[axis] - hi, None))] = fill
    return out


def window_view(xp: Any, x_padded: Any, win: Windows) -> Any:
    """Every window of x_padded (N, C, *P) as a strided view (C, *k, *O, N), no copy."""
    strides = x_padded.strides
    spatial = strides[2:]
    shape = (x_padded.shape[1], *win.kernel, *win.out, x_padded.shape[0])
    view_strides = (
        strides[1],
        *(st * d for st, d in zip(spatial, win.dilation)),
        *(st * s for st, s in zip(spatial, win.stride)),
        strides[0],
    )
    return xp.lib.stride_tricks.as_strided(x_padded, shape=shape, strides=view_strides)


def im2col(xp: Any, x: Any, win: Windows) -> Any:
    """x: (N, C, *S) -> cols: (C, *k, *O, N), contiguous (one copy of the window view)."""
    return xp.ascontiguousarray(window_view(xp, pad(xp, x, win), win))


def offset_slices(win: Windows) -> Iterator[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """For each kernel offset j (row-major order), ``(j, index)`` where
    ``x_padded[index]`` (N, C, *O) holds x_padded[n, c, p * stride + j * dilation]."""
    for j in itertools.product(*(range(k) for k in win.kernel)):
        index = tuple(
            slice(i * d, i * d + s * (o - 1) + 1, s)
            for i, d, s, o in zip(j, win.dilation, win.stride, win.out)
        )
        yield j, (slice(None), slice(None), *index)


def col2im(xp: Any, dcols: Any, win: Windows, size: tuple[int, ...]) -> Any:
    """The adjoint of ``im2col``: dcols (C, *k, *O, N) -> dx (N, C, *S), each column
    entry added back to the input element it was copied from (one add per kernel offset)."""
    c, n = dcols.shape[0], dcols.shape[-1]
    dx = spatial_buffer(xp, (n, c, *win.padded_size(size)), dcols.dtype, 0)
    col2im_add(dcols, win, dx)
    return dx[interior(win, size)] if win.padded else dx


def col2im_add(dcols: Any, win: Windows, dx_padded: Any) -> None:
    """dx_padded (N, C, *P) += col2im(dcols) before cropping: dcols (C, *k, *O, N)."""
    for j, index in offset_slices(win):
        dx_padded[index] += batch_first(dcols[(slice(None), *j)])
