"""Anomaly mode (``torch.autograd.detect_anomaly``): a debugging switch the engine reads.

Inside ``detect_anomaly()`` the engine (``minidl/tensor.py``) checks every op's output and
every gradient it computes for NaN/Inf and raises ``AnomalyError`` naming the first op that
produced one, with the traceback of the user's code that created that op. Outside it the
engine pays one falsy check per op. This file imports nothing of minidl but the backend.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator
from typing import Any

from minidl import backend

enabled = False  # read by the engine on every op's forward and backward


@contextlib.contextmanager
def detect_anomaly() -> Iterator[None]:
    """Check every op's output and every gradient for NaN/Inf; raise naming the first op.

    Each op also records where in the user's code it was created, and a NaN/Inf in its
    backward shows that forward traceback, as PyTorch does."""
    global enabled
    previous, enabled = enabled, True
    try:
        yield
    finally:
        enabled = previous


class AnomalyError(RuntimeError):
    """An op produced a NaN or Inf under ``detect_anomaly()``."""


def check_forward(op: Any, inputs: tuple, out: Any) -> None:
    """Called by ``Op.__call__``: remember the input shapes and where the user's code created
    ``op`` (shown if its backward meets a NaN/Inf), and check its output ``out``."""
    op.input_shapes = [t.shape for t in inputs]
    op._forward_stack = traceback.extract_stack()[:-2]  # the user's code, to the op's call
    check_finite(op, out, "output")


def check_finite(op: Any, array: Any, what: str) -> None:
    """Raise ``AnomalyError`` if the floating ``array`` (``op``'s output or one of its
    gradients, as ``what`` says) holds a NaN or Inf."""
    xp = backend.get_array_module(array)
    if xp.issubdtype(array.dtype, xp.floating) and not bool(xp.isfinite(array).all()):
        bad = "NaN" if bool(xp.isnan(array).any()) else "Inf"
        input_shapes = getattr(op, "input_shapes", None)
        shapes = ", ".join(str(s) for s in input_shapes) if input_shapes else "?"
        message = f"{op.name} produced {bad} in its {what} (inputs of shapes {shapes})"
        stack = getattr(op, "_forward_stack", None)
        if stack:
            message += "\nTraceback of the forward call that created the op:\n"
            message += "".join(traceback.format_list(stack)).rstrip()
        raise AnomalyError(message)
