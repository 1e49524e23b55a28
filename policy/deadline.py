"""Stopping an evaluation once the request's time budget is spent.

The engine has no clock. A caller with a deadline (the webhook: kube-apiserver's
`?timeout=` less a margin) passes a `Deadline`; the engine asks it between its
steps and raises `DeadlineExceeded` instead of finishing late, when nobody is
waiting for the answer any more.
"""

from __future__ import annotations

from typing import Final, Protocol, final


class Deadline(Protocol):
    """Says whether the time for this evaluation is over."""

    def expired(self) -> bool: ...


class DeadlineExceeded(Exception):
    """The evaluation stopped because its deadline passed."""


@final
class Unbounded:
    """A deadline that never expires (offline checks)."""

    def expired(self) -> bool:
        return False


NO_DEADLINE: Final = Unbounded()
