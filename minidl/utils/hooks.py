"""``RemovableHandle``: what every ``register_*_hook`` returns, as in ``torch.utils.hooks``."""

from __future__ import annotations

import itertools
import weakref
from collections.abc import MutableMapping
from typing import Any

_next_id = itertools.count()


class RemovableHandle:
    """Removes one hook from the tables it was registered in: ``handle.remove()``, or
    leave a ``with handle:`` block.

    The tables are held through weak references, so a handle kept after its module is
    gone keeps nothing alive; removing twice is harmless."""

    def __init__(self, *tables: MutableMapping[int, Any]) -> None:
        self.id = next(_next_id)
        self._tables = [weakref.ref(t) for t in tables]

    def remove(self) -> None:
        for ref in self._tables:
            table = ref()
            if table is not None:
                table.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"RemovableHandle(id={self.id})"
