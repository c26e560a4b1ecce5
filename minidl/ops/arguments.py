"""The arguments of the spatial ops (convolution, pooling, resampling) and of their layers:
the names of the spatial axes for messages, and sizes given as an int or one int per axis."""

from __future__ import annotations

SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}


def as_tuple(value: int | tuple[int, ...] | list[int], n: int, name: str, op: str) -> tuple:
    """``value`` repeated to ``n`` entries (an int), or checked to have ``n`` (a sequence)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * n
    if isinstance(value, str):
        raise ValueError(f"{op}: {name} must be an int or {n} ints, got {value!r}")
    value = tuple(value)
    if len(value) != n or not all(isinstance(v, int) for v in value):
        raise ValueError(f"{op}: {name} must be an int or {n} ints, got {value}")
    return value
