"""Values the engine returns: causes, patch operations and the verdict.

Kept free of any wire format so the webhook, the CLI and the controller can each
render them their own way.
"""

from __future__ import annotations

import enum
from typing import Any, Final, final

from policy.values import Value


class CauseType(enum.StrEnum):
    """apimachinery's field error types, with their Kubernetes spellings."""

    INVALID = "FieldValueInvalid"
    NOT_SUPPORTED = "FieldValueNotSupported"
    FORBIDDEN = "FieldValueForbidden"
    REQUIRED = "FieldValueRequired"
    DUPLICATE = "FieldValueDuplicate"
    TOO_MANY = "FieldValueTooMany"


class Action(enum.StrEnum):
    """What a rule's findings do to the request."""

    ENFORCE = "enforce"
    WARN = "warn"
    AUDIT = "audit"
    OFF = "off"


@final
class Cause(Value):
    """One problem a rule found: which rule, where, and what to do about it."""

    FIELDS = ("rule", "type", "field", "message")

    def __init__(self, *, rule: str, type: CauseType, field: str, message: str) -> None:
        self.rule: Final = rule
        self.type: Final = type
        self.field: Final = field
        self.message: Final = message


@final
class Finding(Value):
    """A cause together with the action its rule is configured with."""

    FIELDS = ("cause", "action")

    def __init__(self, *, cause: Cause, action: Action) -> None:
        self.cause: Final = cause
        self.action: Final = action


@final
class PatchOp(Value):
    """One RFC 6902 operation; `path` is already RFC 6901 escaped."""

    FIELDS = ("op", "path", "value")

    def __init__(self, *, op: str, path: str, value: Any = None) -> None:
        self.op: Final = op
        self.path: Final = path
        self.value: Final = value

    def render(self) -> dict[str, Any]:
        """The operation as the JSON object RFC 6902 describes."""
        if self.op == "remove":
            return {"op": self.op, "path": self.path}
        return {"op": self.op, "path": self.path, "value": self.value}


@final
class Verdict(Value):
    """The engine's answer for one request.

    `causes` are the enforced findings (any of them denies), `warnings` are short
    texts for the client, `audit` findings only get recorded, and `patch` holds the
    mutations that turn the request into its safe form.
    """

    FIELDS = ("allowed", "causes", "warnings", "audit", "patch", "findings")

    def __init__(
        self,
        *,
        allowed: bool,
        causes: tuple[Cause, ...] = (),
        warnings: tuple[str, ...] = (),
        audit: tuple[Cause, ...] = (),
        patch: tuple[PatchOp, ...] = (),
        findings: tuple[Finding, ...] = (),
    ) -> None:
        self.allowed: Final = allowed
        self.causes: Final = causes
        self.warnings: Final = warnings
        self.audit: Final = audit
        self.patch: Final = patch
        self.findings: Final = findings

    def render_patch(self) -> list[dict[str, Any]]:
        """The patch as a JSON-serialisable RFC 6902 document."""
        return [op.render() for op in self.patch]
