"""Grad mode (``torch.autograd.grad_mode``): whether ops record the graph.

The engine (``minidl/tensor.py``) reads ``state.enabled`` on every op call: when it is
false, no op records its inputs or saves anything for backward (evaluation, parameter
updates). As in PyTorch the mode belongs to a thread: ``nn.DataParallel`` runs the parts
of a batch on threads, and one part's backward (which turns recording off) must not stop
another part's forward from recording.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class _State(threading.local):
    enabled = True  # every thread starts with recording on


state = _State()  # read by the engine on every op call


@contextlib.contextmanager
def set_grad_enabled(mode: bool) -> Iterator[None]:
    """Inside this block ops record the graph (``True``) or not (``False``)."""
    previous, state.enabled = state.enabled, mode
    try:
        yield
    finally:
        state.enabled = previous


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Inside this block ops record no graph (for evaluation and parameter updates)."""
    return set_grad_enabled(False)


def enable_grad() -> contextlib.AbstractContextManager[None]:
    """Turn graph recording back on inside a ``no_grad`` block."""
    return set_grad_enabled(True)


def is_grad_enabled() -> bool:
    return state.enabled
