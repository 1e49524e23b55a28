"""Values the engine returns: causes, patch operations and the verdict.

Kept free of any wire format so the webhook, the CLI and the controller can each
render them their own way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class CauseType(enum.StrEnum):
    """apimachinery's field error types, with their Kubernetes spellings."""

    INVALID = "FieldValueInvalid"
    NOT_SUPPORTED = "FieldValueNotSupported"
    FORBIDDEN = "FieldValueForbidden"
    REQUIRED = "FieldValueRequired"
    DUPLICATE = "FieldValueDuplicate"


class Action(enum.StrEnum):
    """What a rule's findings do to the request."""

    ENFORCE = "enforce"
    WARN = "warn"
    AUDIT = "audit"
    OFF = "off"


@dataclass(frozen=True, slots=True, kw_only=True)
class Cause:
    """One problem a rule found: which rule, where, and what to do about it."""

    rule: str
    type: CauseType
    field: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """A cause together with the action its rule is configured with."""

    cause: Cause
    action: Action


@dataclass(frozen=True, slots=True, kw_only=True)
class PatchOp:
    """One RFC 6902 operation; `path` is already RFC 6901 escaped."""

    op: str
    path: str
    value: Any = None

    def render(self) -> dict[str, Any]:
        """The operation as the JSON object RFC 6902 describes."""
        if self.op == "remove":
            return {"op": self.op, "path": self.path}
        return {"op": self.op, "path": self.path, "value": self.value}


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The engine's answer for one request.

    `causes` are the enforced findings (any of them denies), `warnings` are short
    texts for the client, `audit` findings only get recorded, and `patch` holds the
    mutations that turn the request into its safe form.
    """

    allowed: bool
    causes: tuple[Cause, ...] = ()
    warnings: tuple[str, ...] = ()
    audit: tuple[Cause, ...] = ()
    patch: tuple[PatchOp, ...] = ()
    findings: tuple[Finding, ...] = field(default=(), repr=False)

    def render_patch(self) -> list[dict[str, Any]]:
        """The patch as a JSON-serialisable RFC 6902 document."""
        return [op.render() for op in self.patch]
