"""PyTorch's ``torch.return_types``: the named tuples that ``max(dim)``, ``min(dim)``,
``sort`` and ``topk`` return. Each is a tuple (``values, indices = x.max(1)`` works)
whose fields are also ``.values`` and ``.indices``."""

from __future__ import annotations

from typing import NamedTuple

from minidl.tensor import Tensor

# Lowercase class names, as PyTorch's (repr: ``max(values=..., indices=...)``).


class max(NamedTuple):
    values: Tensor
    indices: Tensor


class min(NamedTuple):
    values: Tensor
    indices: Tensor


class sort(NamedTuple):
    values: Tensor
    indices: Tensor


class topk(NamedTuple):
    values: Tensor
    indices: Tensor
