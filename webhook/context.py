"""Where the cluster context for a review comes from: a capability the app is given.

Two sources exist: `OfflineContext` (no cluster; everything unknown, the
engine reads running-ness from the VM's status) and the list+watch caches in
`webhook.caches`. Tests inject their own.
"""

from __future__ import annotations

import enum
from typing import Final, Protocol, final

from policy import Context
from policy.values import Value


class ContextState(enum.StrEnum):
    """How much the webhook knows about the cluster."""

    OFFLINE = "offline"
    """No cluster configured: context is unknown by choice, not by failure."""
    SYNCED = "synced"
    """Every cache holds a complete list."""
    UNSYNCED = "unsynced"
    """A cache has not finished its first list (in time for this request)."""


@final
class ContextLookup(Value):
    """The context for one VM and whether it can be trusted to be complete (one per review:
    a value as the engine's are, see `webhook.reviews.Answer`)."""

    FIELDS = ("context", "state")

    def __init__(self, *, context: Context, state: ContextState) -> None:
        self.context: Final = context
        self.state: Final = state


class ContextSource(Protocol):
    """Answers "what does the cluster say about VM `namespace/name`" without an API call."""

    def ready(self) -> bool:
        """True when lookups return complete context (or offline, where none is expected)."""
        ...

    def lookup(self, namespace: str, name: str, *, deadline: float) -> ContextLookup:
        """The context of the VM; waits for unsynced caches until `deadline` (monotonic) at most."""
        ...

    def kubevirt_runs_in(self, namespace: str) -> bool | None:
        """Whether a KubeVirt CR lives in `namespace`; None when that is not known."""
        ...


class OfflineContext:
    """No cluster: every lookup is the unknown context."""

    _LOOKUP = ContextLookup(context=Context(), state=ContextState.OFFLINE)

    def ready(self) -> bool:
        return True

    def lookup(self, namespace: str, name: str, *, deadline: float) -> ContextLookup:
        return self._LOOKUP

    def kubevirt_runs_in(self, namespace: str) -> bool | None:
        return None
