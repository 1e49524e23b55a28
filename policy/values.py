"""The base of every value the engine builds: views, changes, causes, verdicts.

Subclasses are `@final`, write an explicit keyword-only `__init__`, declare their
attributes `Final` and list them in `FIELDS`; why (the compiled build):
docs/architecture.md, "Why the engine's values are written by hand".
"""

from __future__ import annotations

from typing import ClassVar


class Value:
    """Equality, hashing and repr over the attributes named in `FIELDS`."""

    FIELDS: ClassVar[tuple[str, ...]] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple([getattr(self, name) for name in self.FIELDS])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Value) or type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join([f"{name}={getattr(self, name)!r}" for name in self.FIELDS])
        return f"{type(self).__name__}({fields})"
