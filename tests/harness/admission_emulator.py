"""An emulator of kube-apiserver's admission webhook dispatch, for end-to-end tests over HTTPS.

It is not an API server: it only replays what kube-apiserver does around
admission webhooks (staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook),
so that the real `hotplug-guard serve` process is exercised the way a cluster
would exercise it:

- mutating webhooks are called one after the other, each with a fresh uid and
  `?timeout=<N>s`, their JSONPatch applied with RFC 6902 semantics; then the
  validating webhooks see the final object;
- every response is checked like `VerifyAdmissionResponse` (uid and GVK echo,
  patch/patchType pairing, validating webhooks may not patch); a failing check,
  a transport error, a non-200 answer or a timeout is a "calling webhook" error
  that `failurePolicy` decides (Fail: 500 InternalError; Ignore: skipped, with a
  `failed-open` audit annotation);
- a patch that decodes but does not apply, or any patch on DELETE, is an
  internal error whatever the failure policy;
- a denial is shaped like `ToStatusErr` (code < 400 becomes 400, message
  `admission webhook "<name>" denied the request: <message>`);
- warnings go through the Warning-header recorder (control characters or
  invalid UTF-8 dropped, duplicates dropped, truncation past 4096 runes);
  audit annotations are keyed `<webhook name>/<key>` and validated;
- a dry-run request is rejected before calling a webhook whose sideEffects are
  Some or Unknown;
- one reinvocation round: a mutating webhook with `reinvocationPolicy:
  IfNeeded` is called again when a later webhook changed the object.

What kube-apiserver would drop silently (only logging it) is listed in
`Outcome.dropped`; a reinvocation that changed the object again is listed in
`Outcome.reinvocation_changes`, because this product promises idempotence.
"""

from __future__ import annotations

import base64
import binascii
import copy
import enum
import json
import re
import time
import unicodedata
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonpatch
import requests

Object = dict[str, Any]

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
VM_KIND: Object = {"group": "kubevirt.io", "version": "v1", "kind": "VirtualMachine"}
VM_RESOURCE: Object = {"group": "kubevirt.io", "version": "v1", "resource": "virtualmachines"}
TRUNCATE_AT_TOTAL_RUNES = 4 * 1024
TRUNCATE_ITEM_RUNES = 256
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_OPTIONS = {
    "CREATE": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    "UPDATE": {"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"},
    "DELETE": {"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions"},
}


class FailurePolicy(enum.StrEnum):
    FAIL = "Fail"
    IGNORE = "Ignore"


class SideEffects(enum.StrEnum):
    NONE = "None"
    NONE_ON_DRY_RUN = "NoneOnDryRun"
    SOME = "Some"
    UNKNOWN = "Unknown"


class ReinvocationPolicy(enum.StrEnum):
    NEVER = "Never"
    IF_NEEDED = "IfNeeded"


@dataclass(frozen=True, slots=True, kw_only=True)
class Webhook:
    """One webhook of a (Mutating|Validating)WebhookConfiguration, called over HTTPS."""

    name: str
    url: str
    failure_policy: FailurePolicy = FailurePolicy.FAIL
    side_effects: SideEffects = SideEffects.NONE
    timeout_seconds: int = 10
    reinvocation_policy: ReinvocationPolicy = ReinvocationPolicy.NEVER


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalMutator:
    """Another product's mutating webhook in the chain, run in-process: object -> JSON patch."""

    name: str
    patch: Callable[[Object], list[Object]]
    reinvocation_policy: ReinvocationPolicy = ReinvocationPolicy.NEVER


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One webhook call as the emulator saw it."""

    webhook: str
    round: int
    uid: str
    http_status: int | None = None
    response: Object | None = None
    patch: list[Object] | None = None
    error: str = ""
    seconds: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What the API client would see, plus what the emulator noticed on the way."""

    allowed: bool
    status: Object | None
    object: Object | None
    warnings: tuple[str, ...]
    audit_annotations: Mapping[str, str]
    calls: tuple[Call, ...]
    dropped: tuple[str, ...]
    reinvocation_changes: tuple[str, ...]

    @property
    def code(self) -> int:
        return 200 if self.status is None else int(self.status["code"])

    @property
    def message(self) -> str:
        return "" if self.status is None else str(self.status.get("message", ""))


class _CallingError(Exception):
    """ErrCallingWebhook: decided by failurePolicy."""


class _Rejection(Exception):
    """The request fails with this metav1.Status, whatever the failure policy."""

    def __init__(self, status: Object) -> None:
        super().__init__(status.get("message", ""))
        self.status = status


@dataclass(slots=True, kw_only=True)
class _Attempt:
    operation: str
    namespace: str
    name: str
    user: Object
    dry_run: bool
    old: Object | None
    kind: Object
    resource: Object
    sub_resource: str
    obj: Object | None
    calls: list[Call] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    audit: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    reinvocation_changes: list[str] = field(default_factory=list)


class AdmissionEmulator:
    """Runs admission for one request through mutating then validating webhooks."""

    def __init__(
        self,
        *,
        mutating: Sequence[Webhook | LocalMutator] = (),
        validating: Sequence[Webhook] = (),
        ca_file: Path,
        session: requests.Session | None = None,
    ) -> None:
        self.mutating = tuple(mutating)
        self.validating = tuple(validating)
        self.ca_file = ca_file
        self.session = session or requests.Session()

    def admit(
        self,
        *,
        operation: str,
        new: Mapping[str, Any] | None,
        old: Mapping[str, Any] | None = None,
        namespace: str = "default",
        name: str | None = None,
        username: str = "jane@example.com",
        groups: Sequence[str] = ("system:authenticated",),
        dry_run: bool = False,
        kind: Mapping[str, Any] = VM_KIND,
        resource: Mapping[str, Any] = VM_RESOURCE,
        sub_resource: str = "",
    ) -> Outcome:
        """Admit one request; `new` is the object sent by the client (None for DELETE)."""
        source = new if new is not None else old
        if name is None:
            metadata = (source or {}).get("metadata") or {}
            name = str(metadata.get("name", ""))
        attempt = _Attempt(
            operation=operation,
            namespace=namespace,
            name=name,
            user={"username": username, "uid": "user-uid", "groups": list(groups)},
            dry_run=dry_run,
            old=copy.deepcopy(dict(old)) if old is not None else None,
            kind=dict(kind),
            resource=dict(resource),
            sub_resource=sub_resource,
            obj=copy.deepcopy(dict(new)) if new is not None else None,
        )
        try:
            self._mutate(attempt)
            self._validate(attempt)
        except _Rejection as rejection:
            return self._outcome(attempt, rejection.status)
        return self._outcome(attempt, None)

    # phases

    def _mutate(self, attempt: _Attempt) -> None:
        invoked: list[int] = []
        changed_after: dict[int, bool] = {}
        for index, webhook in enumerate(self.mutating):
            changed = self._mutating_call(attempt, webhook, index=index, round_=0)
            if changed:
                for earlier in invoked:
                    changed_after[earlier] = True
            invoked.append(index)
        for index in invoked:
            webhook = self.mutating[index]
            if webhook.reinvocation_policy is ReinvocationPolicy.IF_NEEDED and changed_after.get(
                index
            ):
                before = copy.deepcopy(attempt.obj)
                if self._mutating_call(attempt, webhook, index=index, round_=1):
                    attempt.reinvocation_changes.append(
                        f"{webhook.name}: {jsonpatch.make_patch(before, attempt.obj).patch}"
                    )

    def _validate(self, attempt: _Attempt) -> None:
        rejections: list[Object] = []
        for index, webhook in enumerate(self.validating):
            try:
                self._check_dry_run(attempt, webhook)
                response = self._call(attempt, webhook, round_=0, mutating=False)
            except _CallingError as error:
                status = self._failure_policy(
                    attempt, webhook, error, index=index, kind="validating"
                )
                if status is not None:
                    rejections.append(status)
                continue
            except _Rejection as rejection:
                rejections.append(rejection.status)
                continue
            if not response.get("allowed"):
                rejections.append(_status_error(webhook.name, response.get("status")))
        if rejections:
            raise _Rejection(rejections[0])

    def _mutating_call(
        self, attempt: _Attempt, webhook: Webhook | LocalMutator, *, index: int, round_: int
    ) -> bool:
        """Call one mutating webhook and apply its patch; True if the object changed."""
        if isinstance(webhook, LocalMutator):
            if attempt.obj is None:
                return False
            local = webhook.patch(copy.deepcopy(attempt.obj))
            attempt.calls.append(Call(webhook=webhook.name, round=round_, uid="", patch=local))
            return self._apply(attempt, webhook.name, local)
        self._check_dry_run(attempt, webhook)
        try:
            response = self._call(attempt, webhook, round_=round_, mutating=True)
        except _CallingError as error:
            status = self._failure_policy(attempt, webhook, error, index=index, kind="mutation")
            if status is not None:
                raise _Rejection(status) from None
            return False
        if not response.get("allowed"):
            raise _Rejection(_status_error(webhook.name, response.get("status")))
        operations = attempt.calls[-1].patch
        if operations is None:
            return False
        if attempt.operation == "DELETE":
            raise _Rejection(
                _internal_error(
                    "admission webhook "
                    f'"{webhook.name}" attempted to modify the object, which is not supported '
                    "for this operation"
                )
            )
        return self._apply(attempt, webhook.name, operations)

    def _apply(self, attempt: _Attempt, name: str, operations: list[Object]) -> bool:
        if not operations:
            return False
        try:
            patched = jsonpatch.apply_patch(attempt.obj, operations)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as error:
            # a patch that decodes but does not apply is an internal error, never ignored
            raise _Rejection(_internal_error(f'JSON Patch of "{name}": {error}')) from None
        changed = bool(patched != attempt.obj)
        attempt.obj = patched
        return changed

    # one call

    def _check_dry_run(self, attempt: _Attempt, webhook: Webhook) -> None:
        if attempt.dry_run and webhook.side_effects in (SideEffects.SOME, SideEffects.UNKNOWN):
            raise _Rejection(
                {
                    "status": "Failure",
                    "code": 400,
                    "reason": "BadRequest",
                    "message": f'admission webhook "{webhook.name}" does not support dry run',
                }
            )

    def _call(self, attempt: _Attempt, webhook: Webhook, *, round_: int, mutating: bool) -> Object:
        uid = str(uuid.uuid4())
        review = {"apiVersion": API_VERSION, "kind": KIND, "request": self._request(attempt, uid)}
        started = time.monotonic()
        record = Call(webhook=webhook.name, round=round_, uid=uid)
        try:
            answer = self.session.post(
                f"{webhook.url}?timeout={webhook.timeout_seconds}s",
                data=json.dumps(review),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                timeout=webhook.timeout_seconds,
                verify=str(self.ca_file),
            )
        except requests.RequestException as error:
            attempt.calls.append(
                replace(record, error=str(error), seconds=time.monotonic() - started)
            )
            raise _CallingError(f"failed to call webhook: {error}") from None
        record = replace(record, http_status=answer.status_code, seconds=time.monotonic() - started)
        try:
            response, operations = _verify(answer, uid=uid, mutating=mutating)
        except _CallingError as error:
            attempt.calls.append(replace(record, error=str(error)))
            raise
        attempt.calls.append(replace(record, response=response, patch=operations))
        self._record_warnings(attempt, response.get("warnings") or [])
        self._record_audit(attempt, webhook.name, response.get("auditAnnotations") or {})
        return response

    def _request(self, attempt: _Attempt, uid: str) -> Object:
        request: Object = {
            "uid": uid,
            "kind": attempt.kind,
            "resource": attempt.resource,
            "requestKind": attempt.kind,
            "requestResource": attempt.resource,
            "name": attempt.name,
            "namespace": attempt.namespace,
            "operation": attempt.operation,
            "userInfo": attempt.user,
            "object": attempt.obj if attempt.operation != "DELETE" else None,
            "oldObject": attempt.old if attempt.operation in ("UPDATE", "DELETE") else None,
            "dryRun": attempt.dry_run,
            "options": _OPTIONS.get(attempt.operation),
        }
        if attempt.sub_resource:
            request["subResource"] = request["requestSubResource"] = attempt.sub_resource
        return request

    def _failure_policy(
        self, attempt: _Attempt, webhook: Webhook, error: _CallingError, *, index: int, kind: str
    ) -> Object | None:
        """Ignore: None (skipped, annotated); Fail: the InternalError status."""
        if webhook.failure_policy is FailurePolicy.IGNORE:
            attempt.audit[f"failed-open.{kind}.webhook.admission.k8s.io/round_0_index_{index}"] = (
                webhook.name
            )
            return None
        return _internal_error(f'failed calling webhook "{webhook.name}": {error}')

    # warnings and audit annotations, as kube-apiserver records them

    def _record_warnings(self, attempt: _Attempt, warnings: Any) -> None:
        for text in warnings:
            if not isinstance(text, str) or not text:
                continue
            if any(unicodedata.category(c) == "Cc" for c in text) or "\ufffd" in text:
                attempt.dropped.append(f"warning with control characters: {text!r}")
                continue
            if text not in attempt.warnings:  # said once, whichever webhook said it
                attempt.warnings.append(text)

    def _record_audit(
        self, attempt: _Attempt, webhook: str, annotations: Mapping[str, Any]
    ) -> None:
        for key, value in annotations.items():
            full = f"{webhook}/{key}"
            problem = _audit_key_problem(full)
            if problem:
                attempt.dropped.append(f"audit annotation {full!r}: {problem}")
                continue
            if full in attempt.audit and attempt.audit[full] != value:
                attempt.dropped.append(f"audit annotation {full!r}: cannot overwrite")
                continue
            attempt.audit[full] = str(value)

    def _outcome(self, attempt: _Attempt, status: Object | None) -> Outcome:
        return Outcome(
            allowed=status is None,
            status=status,
            object=attempt.obj if status is None else None,
            warnings=_warning_headers(attempt.warnings),
            audit_annotations=dict(attempt.audit),
            calls=tuple(attempt.calls),
            dropped=tuple(attempt.dropped),
            reinvocation_changes=tuple(attempt.reinvocation_changes),
        )


def _verify(
    answer: requests.Response, *, uid: str, mutating: bool
) -> tuple[Object, list[Object] | None]:
    """VerifyAdmissionResponse plus decoding: the response and its decoded patch."""
    if answer.status_code != 200:
        raise _CallingError(f"expected response code 200, got {answer.status_code}")
    content_type = answer.headers.get("Content-Type", "").split(";")[0].strip()
    if content_type != "application/json":
        raise _CallingError(f"unexpected response Content-Type {content_type!r}")
    try:
        review = answer.json()
    except ValueError as error:
        raise _CallingError(f"failed to decode the response: {error}") from None
    if not isinstance(review, dict):
        raise _CallingError("the response is not an AdmissionReview object")
    if (review.get("apiVersion"), review.get("kind")) != (API_VERSION, KIND):
        raise _CallingError(
            f"expected webhook response of {API_VERSION}, Kind={KIND}, got "
            f"{review.get('apiVersion')}, Kind={review.get('kind')}"
        )
    response = review.get("response")
    if not isinstance(response, dict):
        raise _CallingError("webhook response was absent")
    if response.get("uid") != uid:
        raise _CallingError(f'expected response.uid="{uid}", got "{response.get("uid")}"')
    if not isinstance(response.get("allowed"), bool):
        raise _CallingError("response.allowed is not a boolean")
    has_patch, has_type = "patch" in response, "patchType" in response
    if not mutating:
        if has_patch or has_type:
            raise _CallingError("validating webhook may not return response.patch[Type]")
        return response, None
    if has_patch and not has_type:
        raise _CallingError("webhook returned response.patch but not response.patchType")
    if has_type and not has_patch:
        raise _CallingError("webhook returned response.patchType but not response.patch")
    if not has_patch:
        return response, None
    if response["patchType"] != "JSONPatch":
        raise _CallingError(
            f"webhook returned invalid response.patchType of {response['patchType']!r}"
        )
    try:
        operations = json.loads(base64.b64decode(response["patch"], validate=True))
    except (binascii.Error, ValueError, TypeError) as error:
        raise _CallingError(f"cannot decode response.patch: {error}") from None
    if not isinstance(operations, list):
        raise _CallingError("response.patch is not a JSON array")
    return response, operations


def _status_error(webhook: str, result: Any) -> Object:
    """ToStatusErr: the rejection as the API client sees it."""
    status: Object = dict(result) if isinstance(result, dict) else {}
    code = status.get("code")
    if not isinstance(code, int) or code < 400:
        status["code"] = 400
    if status.get("status") in (None, "", "Success"):
        status["status"] = "Failure"
    denied = f'admission webhook "{webhook}" denied the request'
    if status.get("message"):
        status["message"] = f"{denied}: {status['message']}"
    elif status.get("reason"):
        status["message"] = f"{denied}: {status['reason']}"
    else:
        status["message"] = f"{denied} without explanation"
    return status


def _internal_error(message: str) -> Object:
    return {
        "status": "Failure",
        "code": 500,
        "reason": "InternalError",
        "message": f"Internal error occurred: {message}",
    }


def _audit_key_problem(key: str) -> str:
    """IsQualifiedName, with exactly one `/`: "" when fine."""
    parts = key.split("/")
    if len(parts) != 2:
        return "must have exactly one '/' (the webhook's own key may not contain '/')"
    prefix, name = parts
    if not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix):
        return "prefix must be a DNS subdomain"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        return "name part must be 63 characters or less, alphanumeric, '-', '_' or '.'"
    return ""


def _warning_headers(texts: Sequence[str]) -> tuple[str, ...]:
    """The recorder in filters/warning.go: all texts, or all truncated past the total budget."""
    if sum(len(text) for text in texts) <= TRUNCATE_AT_TOTAL_RUNES:
        return tuple(texts)
    shown: list[str] = []
    written = 0
    for text in texts:
        if written >= TRUNCATE_AT_TOTAL_RUNES:
            break
        cut = text[:TRUNCATE_ITEM_RUNES]
        shown.append(cut)
        written += len(cut)
    return tuple(shown)
