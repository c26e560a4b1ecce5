"""Grad mode (``torch.autograd.grad_mode``): whether ops record the graph.

The engine (``minidl/tensor.py``) reads ``enabled`` on every op call: when it is false, no
op records its inputs or saves anything for backward (evaluation, parameter updates).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

enabled = True  # read by the engine on every op call


@contextlib.contextmanager
def set_grad_enabled(mode: bool) -> Iterator[None]:
    """Inside this block ops record the graph (``True``) or not (``False``)."""
    global enabled
    previous, enabled = enabled, mode
    try:
        yield
    finally:
        enabled = previous


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Inside this block ops record no graph (for evaluation and parameter updates)."""
    return set_grad_enabled(False)


def enable_grad() -> contextlib.AbstractContextManager[None]:
    """Turn graph recording back on inside a ``no_grad`` block."""
    return set_grad_enabled(True)


def is_grad_enabled() -> bool:
    return enabled
