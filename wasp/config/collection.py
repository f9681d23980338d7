"""The `collection(key=...)` marker of an IIS collection field (add / remove / clear).

Its own module, below model.py and sections/, so that model.py's sections (caching profiles) can
be collections without an import cycle; `wasp.config.sections` re-exports it.
"""

from __future__ import annotations

from typing import Any


def fold(value: Any) -> Any:
    """A key value compared as IIS compares keys: strings without regard to case."""
    if isinstance(value, (list, tuple)):
        return tuple(fold(v) for v in value)
    return value.lower() if isinstance(value, str) else value


class Collection:
    """What `collection(key=...)` puts in a list field's Annotated metadata."""

    __slots__ = ("key", "merge_append")

    def __init__(self, key: str | tuple[str, ...] | None, merge_append: bool = True):
        self.key = key
        self.merge_append = merge_append

    def key_of(self, item: Any) -> Any:
        """An entry's identity: the item itself (key None: a list of plain values), one field,
        or a tuple of fields."""
        if self.key is None:
            return fold(item)
        if isinstance(self.key, tuple):
            return tuple(fold(getattr(item, name)) for name in self.key)
        return fold(getattr(item, self.key))

    def show(self, item: Any) -> str:
        if self.key is None:
            return f"\"{item}\""
        if isinstance(self.key, tuple):
            return ", ".join(f"{name} = {getattr(item, name)!r}" for name in self.key)
        return f"{self.key} = \"{getattr(item, self.key)}\""


def collection(key: str | tuple[str, ...] | None = None, *, merge_append: bool = True) -> Collection:
    """Annotated[list[Item], collection(key="name")]: an IIS collection keyed by `key` (a field of
    Item, a tuple of fields, or None for a list of plain values such as file names).
    merge_append=False puts a level's added entries before the inherited ones (IIS
    defaultDocument files, handlers)."""
    return Collection(key, merge_append)
