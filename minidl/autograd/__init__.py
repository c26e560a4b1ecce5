"""``minidl.autograd``: tools around the engine (``minidl/tensor.py``).

``trace()`` records every op's forward and backward (``minidl/autograd/trace.py``)."""

from __future__ import annotations

from minidl.autograd.trace import trace

__all__ = ["trace"]
