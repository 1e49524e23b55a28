"""`lazy`: an attribute computed on first access and then stored on the instance.

The same contract as `functools.cached_property`, whose Python 3.11 version takes
a lock on every first access; the views are built per request in one thread, so
the lock is pure cost on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Self, TypeVar, overload

_Owner = TypeVar("_Owner")
_Value = TypeVar("_Value")


class lazy(Generic[_Owner, _Value]):
    """Decorate a method to compute it once per instance, on first access."""

    def __init__(self, compute: Callable[[_Owner], _Value]) -> None:
        self._compute = compute
        self._name = compute.__name__
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> Self: ...

    @overload
    def __get__(self, instance: _Owner, owner: type[Any] | None = None) -> _Value: ...

    def __get__(self, instance: _Owner | None, owner: type[Any] | None = None) -> Self | _Value:
        if instance is None:
            return self
        value = self._compute(instance)
        # a non-data descriptor: once in the instance dict, the value shadows it
        instance.__dict__[self._name] = value
        return value
