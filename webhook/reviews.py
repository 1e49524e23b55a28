"""AdmissionReview v1 on the wire: parse the request, render the one response.

The shapes follow `k8s.io/api/admission/v1`; everything kube-apiserver checks
in a response (uid and GVK echo, patch/patchType pairing, status shaping) is
decided in `render_review`, the only place a response is built.
"""

from __future__ import annotations

import base64
import enum
import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NotRequired, TypedDict, final

import orjson

from policy import Cause, Mode, Operation, Review, UserInfo, Verdict
from policy.engine import ALLOWED
from policy.values import Value

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
PRODUCT = "hotplug-guard"

VM_GROUP = "kubevirt.io"
VM_KIND = "VirtualMachine"
VM_RESOURCE = "virtualmachines"

MAX_JSON_CONTAINERS = 200_000
"""JSON objects and arrays a body may hold, counted before parsing as its `{` and `[` bytes
(those in strings too, so an upper bound). A VirtualMachine review has a few thousand;
each costs the parser about 250 bytes and the time to build it, while it holds the GIL."""
MAX_CAUSES = 10
"""KubeVirt's webhooks list at most ten causes; more are summarised in the message."""
MAX_WARNING_CHARS = 120
"""kube-apiserver's guidance for warning length."""
MAX_CACHED_WARNING_CHARS = 1024
"""Longer warning texts are shortened anew each time, so the cache stays small."""
MAX_AUDIT_VALUE_CHARS = 4096
_AUDIT_KEY = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_MAX_AUDIT_KEY_CHARS = 63
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
"""`request.uid` as kube-apiserver sends it (`uuid.NewUUID`): echoed, logged and nothing else."""
_CONTROL = re.compile(f"[\x00-\x1f\x7f-\x9f{chr(0xD800)}-{chr(0xDFFF)}]+")
"""Control characters and lone surrogates (which would reach kube-apiserver as invalid UTF-8;
written with `chr`, as the compiled build takes no surrogate in a string literal)."""

_STANDARD_COMPACT = json.JSONEncoder(separators=(",", ":")).encode


ORJSON_MAX_BYTES = 256 * 1024
"""Larger bodies are decoded by the standard library. On the worst body the webhook lets
through, orjson's peak memory is 21.7 times the body's size against the standard library's
18.8 (RSS), beyond what the serving worker budgets per body (`webhook.worker.EXPANSION`).
A VirtualMachine's review takes a few to a few tens of kilobytes."""


def decode_json(body: bytes) -> Any:
    """`json.loads(body)`, by orjson where it can (a review's body in 0.44x the time).

    orjson takes strict RFC 8259 JSON in UTF-8 only; what it refuses (lone surrogate
    escapes, NaN, numbers beyond a double's range, other encodings, a byte order mark)
    goes to the standard library, which decodes it as it always did or raises its usual
    errors, and so do bodies over `ORJSON_MAX_BYTES`. The one difference left: orjson
    reads an integer beyond 64 bits as a float, as kube-apiserver, which holds such
    numbers as float64, sends it anyway.
    """
    if len(body) <= ORJSON_MAX_BYTES:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


def compact_json(value: object) -> bytes:
    """`value` as compact JSON in UTF-8, by orjson where it can.

    What orjson cannot encode (a lone surrogate, an integer beyond 64 bits, a key that is
    not a string) the standard library encodes as before, escaping what is not ASCII.
    """
    try:
        return orjson.dumps(value)
    except TypeError:
        return _STANDARD_COMPACT(value).encode("ascii")


class RequestError(Exception):
    """The HTTP request is not an AdmissionReview this webhook can answer.

    `status` is the HTTP status to answer with (400 or 413); no AdmissionReview
    is returned because there is no trustworthy uid to echo.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- wire shapes -------------------------------------------------------------------------


class GroupVersionKindWire(TypedDict, total=False):
    group: str
    version: str
    kind: str


class GroupVersionResourceWire(TypedDict, total=False):
    group: str
    version: str
    resource: str


class UserInfoWire(TypedDict, total=False):
    username: str
    uid: str
    groups: list[str]
    extra: dict[str, list[str]]


class AdmissionRequestWire(TypedDict, total=False):
    uid: str
    kind: GroupVersionKindWire
    resource: GroupVersionResourceWire
    subResource: str
    requestKind: GroupVersionKindWire
    requestResource: GroupVersionResourceWire
    requestSubResource: str
    name: str
    namespace: str
    operation: str
    userInfo: UserInfoWire
    object: dict[str, Any] | None
    oldObject: dict[str, Any] | None
    dryRun: bool
    options: dict[str, Any] | None


class StatusCauseWire(TypedDict):
    reason: str
    message: str
    field: str


class StatusDetailsWire(TypedDict, total=False):
    name: str
    group: str
    kind: str
    causes: list[StatusCauseWire]


class StatusWire(TypedDict):
    status: Literal["Failure"]
    code: int
    reason: str
    message: str
    details: NotRequired[StatusDetailsWire]


class AdmissionResponseWire(TypedDict):
    uid: str
    allowed: bool
    status: NotRequired[StatusWire]
    patch: NotRequired[str]
    patchType: NotRequired[Literal["JSONPatch"]]
    warnings: NotRequired[list[str]]
    auditAnnotations: NotRequired[dict[str, str]]


class AdmissionReviewWire(TypedDict):
    apiVersion: str
    kind: str
    response: AdmissionResponseWire


# --- domain values -----------------------------------------------------------------------


@final
class Envelope(Value):
    """What every response must echo: the review's GVK and the request uid.

    `name` is the object's name (empty for a `generateName` CREATE): a denial
    names it, as kubectl prints `The VirtualMachine "<name>" is invalid: ...`.
    """

    FIELDS = ("api_version", "kind", "uid", "name")

    def __init__(self, *, api_version: str, kind: str, uid: str, name: str = "") -> None:
        self.api_version: Final = api_version
        self.kind: Final = kind
        self.uid: Final = uid
        self.name: Final = name


@final
class AdmissionRequest(Value):
    """One admission request, checked for shape but with the objects kept raw.

    The per-review values of this module are written as the engine's are (see `Answer`).
    """

    FIELDS = (
        "envelope",
        "group",
        "kind",
        "resource",
        "sub_resource",
        "operation",
        "namespace",
        "name",
        "user",
        "dry_run",
        "object",
        "old_object",
    )

    def __init__(
        self,
        *,
        envelope: Envelope,
        group: str,
        kind: str,
        resource: str,
        sub_resource: str,
        operation: Operation,
        namespace: str,
        name: str,
        user: UserInfo,
        dry_run: bool,
        object: Mapping[str, Any] | None,
        old_object: Mapping[str, Any] | None,
    ) -> None:
        self.envelope: Final = envelope
        self.group: Final = group
        self.kind: Final = kind
        self.resource: Final = resource
        self.sub_resource: Final = sub_resource
        self.operation: Final = operation
        self.namespace: Final = namespace
        self.name: Final = name
        self.user: Final = user
        self.dry_run: Final = dry_run
        self.object: Final = object
        self.old_object: Final = old_object

    @property
    def is_virtual_machine(self) -> bool:
        """True for the main resource of a `kubevirt.io` VirtualMachine (any version)."""
        return (
            self.group == VM_GROUP
            and self.kind == VM_KIND
            and self.resource == VM_RESOURCE
            and not self.sub_resource
        )

    def review(self) -> Review:
        """The engine's view of this request."""
        return Review(
            operation=self.operation,
            new=self.object,
            old=self.old_object,
            user=self.user,
            dry_run=self.dry_run,
            namespace=self.namespace,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """A denial that is the webhook's own, not a policy rule's (cluster context, crash)."""

    code: int
    reason: str
    message: str


INTERNAL_ERROR = Refusal(
    code=500,
    reason="InternalError",
    message="internal error while reviewing the request; the webhook log has the details "
    "under this request's uid",
)


class Disposition(enum.StrEnum):
    """How a request was handled, for the log line and the metrics."""

    EVALUATED = "evaluated"
    UNTOUCHED = "untouched"
    MISROUTED = "misrouted"
    REFUSED = "refused"
    TIMED_OUT = "timed-out"
    FAILED = "failed"


@final
class Answer(Value):
    """Everything the response will say: the engine's verdict plus the webhook's own notes.

    Written as the engine's values are: one per review, built in compiled code, where a
    dataclass's generated `__init__` runs interpreted (docs/architecture.md, "Why the
    engine's values are written by hand").
    """

    FIELDS = ("disposition", "verdict", "refusal", "warnings", "audit")

    def __init__(
        self,
        *,
        disposition: Disposition,
        verdict: Verdict = ALLOWED,
        refusal: Refusal | None = None,
        warnings: tuple[str, ...] = (),
        audit: Mapping[str, str] | None = None,
    ) -> None:
        self.disposition: Final = disposition
        self.verdict: Final = verdict
        self.refusal: Final = refusal
        self.warnings: Final = warnings
        self.audit: Final[Mapping[str, str]] = {} if audit is None else audit

    @property
    def allowed(self) -> bool:
        return self.refusal is None and self.verdict.allowed


# --- parsing -----------------------------------------------------------------------------


def parse_envelope(body: bytes) -> tuple[Envelope, Mapping[str, Any]]:
    """Decode the body far enough to know what to echo; return it with the raw `request`."""
    if not body:
        raise RequestError(400, "empty body; expected an AdmissionReview")
    # a body has no more brackets than bytes: only longer ones are counted
    containers = 0 if len(body) <= MAX_JSON_CONTAINERS else body.count(b"{") + body.count(b"[")
    if containers > MAX_JSON_CONTAINERS:
        raise RequestError(
            413,
            f"body has {containers} '{{' and '[' characters, over {MAX_JSON_CONTAINERS}: more "
            "JSON objects and arrays than a VirtualMachine review can need",
        )
    try:
        document = decode_json(body)
    except UnicodeDecodeError:
        raise RequestError(400, "body is not UTF-8 JSON") from None
    except ValueError as error:
        raise RequestError(400, f"body is not valid JSON: {error}") from None
    except RecursionError:
        raise RequestError(400, "body is nested too deeply") from None
    if not isinstance(document, dict):
        raise RequestError(400, "body must be a JSON object (an AdmissionReview)")
    api_version, kind = document.get("apiVersion"), document.get("kind")
    if kind != KIND:
        raise RequestError(400, f"kind must be {KIND!r}, got {_shown(kind)}")
    if api_version != API_VERSION:
        raise RequestError(
            400,
            f"apiVersion must be {API_VERSION!r}, got {_shown(api_version)}; "
            "register the webhook with admissionReviewVersions: [v1]",
        )
    request = document.get("request")
    if not isinstance(request, dict):
        raise RequestError(400, "request is missing or not an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not _UUID.fullmatch(uid):
        raise RequestError(
            400, f"request.uid must be a UUID as kube-apiserver sends it, got {_shown(uid)}"
        )
    name = request.get("name")
    name = name[:253] if isinstance(name, str) else ""  # a Kubernetes name is at most 253
    return Envelope(api_version=api_version, kind=kind, uid=uid, name=name), request


_OPERATIONS: Final[dict[str, Operation]] = {str(op): op for op in Operation}
"""Each operation by its name: a dict lookup, where calling the enum runs the enum
module's Python code on every review."""


def parse_admission_request(envelope: Envelope, request: Mapping[str, Any]) -> AdmissionRequest:
    """Check the request's shape; `RequestError` (HTTP 400) for what kube-apiserver never sends."""
    given = request.get("operation")
    operation = _OPERATIONS.get(given) if isinstance(given, str) else None
    if operation is None:
        allowed = ", ".join(_OPERATIONS)
        raise RequestError(
            400,
            f"request.operation must be one of {allowed}, got {_shown(given)}",
        )
    kind = _mapping(request, "kind", required=True)
    resource = _mapping(request, "resource", required=True)
    user = _mapping(request, "userInfo", required=False)
    groups = user.get("groups", [])
    if groups is None:
        groups = []
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise RequestError(400, "request.userInfo.groups must be a list of strings")
    dry_run = request.get("dryRun", False)
    if dry_run is None:
        dry_run = False
    if not isinstance(dry_run, bool):
        raise RequestError(400, f"request.dryRun must be a boolean, got {_shown(dry_run)}")
    new = _object(request, "object", required=operation in (Operation.CREATE, Operation.UPDATE))
    old = _object(request, "oldObject", required=operation is Operation.UPDATE)
    return AdmissionRequest(
        envelope=envelope,
        group=_string(kind, "group", "request.kind.group"),
        kind=_string(kind, "kind", "request.kind.kind"),
        resource=_string(resource, "resource", "request.resource.resource"),
        sub_resource=_string(request, "subResource", "request.subResource"),
        operation=operation,
        namespace=_string(request, "namespace", "request.namespace"),
        name=_string(request, "name", "request.name"),
        user=UserInfo(
            username=_string(user, "username", "request.userInfo.username"), groups=tuple(groups)
        ),
        dry_run=dry_run,
        object=new,
        old_object=old,
    )


def _mapping(data: Mapping[str, Any], key: str, *, required: bool) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise RequestError(400, f"request.{key} is missing or not an object")
    return value


def _object(data: Mapping[str, Any], key: str, *, required: bool) -> Mapping[str, Any] | None:
    value = data.get(key)
    if value is None:
        if required:
            raise RequestError(400, f"request.{key} is missing; {data.get('operation')} needs it")
        return None
    if not isinstance(value, dict):
        raise RequestError(400, f"request.{key} must be an object, got {_shown(value)}")
    return value


def _string(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RequestError(400, f"{where} must be a string, got {_shown(value)}")
    return value


def _shown(value: object) -> str:
    if isinstance(value, str):
        return repr(value[:40])
    return "null" if value is None else type(value).__name__


# --- rendering ---------------------------------------------------------------------------


def render_review(envelope: Envelope, answer: Answer, *, mode: Mode) -> AdmissionReviewWire:
    """The AdmissionReview response for `answer`; the only place a response is shaped.

    `/validate` never carries a patch, whatever the verdict holds, because
    kube-apiserver fails a validating webhook call that returns one.
    """
    response: AdmissionResponseWire = {"uid": envelope.uid, "allowed": answer.allowed}
    if answer.refusal is not None:
        response["status"] = {
            "status": "Failure",
            "code": answer.refusal.code,
            "reason": answer.refusal.reason,
            "message": _one_line(f"{PRODUCT}: {answer.refusal.message}"),
        }
    elif not answer.verdict.allowed:
        response["status"] = _render_denial(answer.verdict.causes, name=envelope.name)
    elif mode is Mode.MUTATE and answer.verdict.patch:
        document = compact_json(answer.verdict.render_patch())
        response["patch"] = base64.b64encode(document).decode("ascii")
        response["patchType"] = "JSONPatch"
    warnings = _render_warnings((*answer.verdict.warnings, *answer.warnings))
    if warnings:
        response["warnings"] = warnings
    audit = _render_audit(answer.verdict.audit, answer.audit)
    if audit:
        response["auditAnnotations"] = audit
    return {"apiVersion": envelope.api_version, "kind": envelope.kind, "response": response}


def _render_denial(causes: Sequence[Cause], *, name: str) -> StatusWire:
    """KubeVirt's deny format: 422 Invalid, causes joined by ", ", at most ten listed.

    For an Invalid status kubectl prints only `details` (`The <kind> "<name>" is
    invalid: <field>: <cause message>`), not the message: each cause therefore
    names the product and the rule itself.
    """
    shown = causes[:MAX_CAUSES]
    parts = [_one_line(": ".join(p for p in (c.rule, c.field, c.message) if p)) for c in shown]
    if not parts:
        parts = ["the request was denied by policy"]
    message = f"{PRODUCT}: " + ", ".join(parts)
    if len(causes) > MAX_CAUSES:
        message += f", and {len(causes) - MAX_CAUSES} more validation errors"
    return {
        "status": "Failure",
        "code": 422,
        "reason": "Invalid",
        "message": message,
        "details": {
            "name": name,
            "group": VM_GROUP,
            "kind": VM_KIND,
            "causes": [
                {
                    "reason": str(c.type),
                    "message": _one_line(f"{PRODUCT}: {c.rule}: {c.message}"),
                    "field": c.field,
                }
                for c in shown
            ],
        },
    }


def _render_warnings(texts: Sequence[str]) -> list[str]:
    """Warnings kube-apiserver will pass on: one line, short, each said once."""
    seen: dict[str, None] = {}
    for text in texts:
        line = _warning_line(text) if len(text) <= MAX_CACHED_WARNING_CHARS else _shorten_line(text)
        if line:
            seen.setdefault(line)
    return list(seen)


def _shorten_line(text: str) -> str:
    return _shorten(_one_line(text), MAX_WARNING_CHARS)


_warning_line = functools.lru_cache(maxsize=256)(_shorten_line)
"""`_shorten_line`, remembered: the same few warnings recur on every hot plug."""


def _render_audit(findings: Sequence[Cause], extra: Mapping[str, str]) -> dict[str, str]:
    """Audit annotations keyed by rule id; kube-apiserver prefixes them with the webhook name."""
    grouped: dict[str, list[str]] = {}
    for cause in findings:
        text = f"{cause.field}: {cause.message}" if cause.field else cause.message
        grouped.setdefault(audit_key(cause.rule), []).append(_one_line(text))
    for key, value in extra.items():
        grouped.setdefault(audit_key(key), []).append(_one_line(value))
    return {
        key: _shorten("; ".join(dict.fromkeys(values)), MAX_AUDIT_VALUE_CHARS)
        for key, values in grouped.items()
    }


def audit_key(name: str) -> str:
    """`name` as the name part of a qualified name: no `/`, at most 63 characters."""
    key = re.sub(r"[^-A-Za-z0-9_.]+", "-", name)[:_MAX_AUDIT_KEY_CHARS].strip("-_.")
    return key if _AUDIT_KEY.fullmatch(key) else "finding"


def _one_line(text: str) -> str:
    """`text` without control characters or invalid UTF-8 (kube-apiserver drops warnings
    that have any).
    """
    return " ".join(_CONTROL.sub(" ", text).split())


def _shorten(text: str, limit: int) -> str:
    """`text` cut at a word boundary to at most `limit` characters, marked with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 3]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "..."
