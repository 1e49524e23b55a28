"""The base of every value the engine builds: views, changes, causes, verdicts.

These are not frozen dataclasses, though they play that part: the engine builds
dozens per request (one per interface, network and VMI status entry), and when
`policy/` is compiled (setup.py) a dataclass keeps an interpreted `__init__`,
10-30x slower than the explicit one each subclass writes. Subclasses are
`@final`, declare their attributes `Final` (mypy rejects any assignment; the
compiled build refuses one at run time too) and list them in `FIELDS`, which
gives them dataclass-like equality, hashing and repr. What callers build (the
review, its context, the policy config) stays frozen dataclasses.
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
