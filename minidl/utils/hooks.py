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

    The tables (a module's hook dicts, keyed by ``id``) are held through weak references,
    so a handle kept after its module is gone keeps nothing alive. A tensor keeps its hooks
    in a list (cheaper to create with every tensor): ``entry=(hooks, hook)`` removes that
    hook from that list. Removing twice is harmless."""

    def __init__(
        self, *tables: MutableMapping[int, Any], entry: tuple[list, Any] | None = None
    ) -> None:
        self.id = next(_next_id)
        self._tables = [weakref.ref(t) for t in tables]
        self._entry = entry

    def remove(self) -> None:
        for ref in self._tables:
            table = ref()
            if table is not None:
                table.pop(self.id, None)
        if self._entry is not None:
            hooks, hook = self._entry
            if hook in hooks:
                hooks.remove(hook)
            self._entry = None

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"RemovableHandle(id={self.id})"
