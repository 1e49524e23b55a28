"""The decision for one parsed request: route it, gather context, ask the engine.

Kept apart from HTTP so it can be called directly; the engine and the context
source are injected, which is how tests replace them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from policy import Context, Mode, Operation, PolicyConfig, Review, Verdict
from policy.config import ContextUnavailable
from policy.deadline import Deadline, DeadlineExceeded
from policy.signing import SigningKeys
from webhook.context import ContextSource, ContextState
from webhook.patches import check_engine_patch
from webhook.reviews import (
    AdmissionRequest,
    AdmissionReviewWire,
    Answer,
    Disposition,
    Refusal,
)

CONTEXT_WARNING = (
    "cluster context is not available yet (caches syncing); checks that need it were skipped"
)
CONTEXT_REFUSAL = Refusal(
    code=503,
    reason="ServiceUnavailable",
    message="context-unavailable: the webhook's cluster caches are not synced yet, so interface "
    "changes cannot be checked; retry in a few seconds (policy contextUnavailable: deny)",
)
CONTEXT_AUDIT_KEY = "context"
DEADLINE_REFUSAL = Refusal(
    code=504,
    reason="Timeout",
    message="deadline: the review did not finish within the time kube-apiserver gives the "
    "webhook; retry, and if it persists see the webhook's CPU and the request's size",
)
DEADLINE_WARNING = (
    "the mutation did not finish within its time budget and was skipped; the validating "
    "webhook still judges the request"
)


class Evaluator(Protocol):
    """The engine's entry point, `policy.evaluate`."""

    def __call__(
        self,
        review: Review,
        context: Context,
        config: PolicyConfig,
        *,
        mode: Mode,
        keys: SigningKeys | None,
        deadline: Deadline,
    ) -> Verdict: ...


class MonotonicDeadline:
    """The engine's `Deadline` at a `time.monotonic()` instant."""

    def __init__(self, at: float) -> None:
        self.at = at

    def expired(self) -> bool:
        return time.monotonic() >= self.at


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """Answers parsed requests with the injected engine, config, context source and the
    keys that sign hot plug requests.
    """

    evaluate: Evaluator
    config: PolicyConfig
    context: ContextSource
    keys: SigningKeys | None = None

    def readiness(self) -> str | None:
        """Why this worker should not get reviews yet, or None when it is ready.

        KubeVirt's controller is exempt by the namespace the policy names; if KubeVirt
        does not run there, the exemption belongs to whoever can create that namespace.
        """
        if not self.context.ready():
            return "cluster caches are not synced yet"
        namespace = self.config.exemptions.kubevirt_namespace
        if namespace and self.context.kubevirt_runs_in(namespace) is False:
            return (
                f"no KubeVirt CR in namespace '{namespace}' (policy exemptions.kubevirtNamespace): "
                "its kubevirt-controller service account would be exempt by a name anyone who "
                "can create that namespace could claim; set the namespace KubeVirt runs in"
            )
        return None

    def answer(
        self, request: AdmissionRequest, *, mode: Mode, context_deadline: float, deadline: float
    ) -> Answer:
        """The answer to `request`; `context_deadline` bounds waiting for cluster context and
        `deadline` the whole review (both `time.monotonic()`).

        Misrouted requests (not a VirtualMachine) and DELETE/CONNECT pass untouched so
        that a too-wide webhook registration never breaks the cluster. A review that
        reaches its deadline is never answered late: `/validate` refuses it (it fails
        closed, as registered) and `/mutate` lets it through unpatched (it fails open,
        and the validating webhook still judges the request).
        """
        if not request.is_virtual_machine:
            return Answer(disposition=Disposition.MISROUTED)
        if request.operation in (Operation.DELETE, Operation.CONNECT):
            return Answer(disposition=Disposition.UNTOUCHED)
        lookup = self.context.lookup(request.namespace, _name(request), deadline=context_deadline)
        warnings: tuple[str, ...] = ()
        audit: dict[str, str] = {}
        if lookup.state is ContextState.UNSYNCED:
            if self.config.context_unavailable is ContextUnavailable.DENY and _guarded(
                request, self.config
            ):
                return Answer(disposition=Disposition.REFUSED, refusal=CONTEXT_REFUSAL)
            warnings = (CONTEXT_WARNING,)
            audit = {CONTEXT_AUDIT_KEY: "unavailable"}
        try:
            verdict = self.evaluate(
                request.review(),
                lookup.context,
                self.config,
                mode=mode,
                keys=self.keys,
                deadline=MonotonicDeadline(deadline),
            )
        except DeadlineExceeded:
            if mode is Mode.VALIDATE:
                return Answer(disposition=Disposition.TIMED_OUT, refusal=DEADLINE_REFUSAL)
            return Answer(disposition=Disposition.TIMED_OUT, warnings=(DEADLINE_WARNING,))
        return Answer(
            disposition=Disposition.EVALUATED, verdict=verdict, warnings=warnings, audit=audit
        )


def _name(request: AdmissionRequest) -> str:
    if request.name:
        return request.name
    metadata = (request.object or {}).get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else ""


def _guarded(request: AdmissionRequest, config: PolicyConfig) -> bool:
    """True for the requests `contextUnavailable: deny` refuses: non-exempt UPDATEs that
    change the VM's interfaces or networks. Everything else still gets evaluated.
    """
    if request.operation is not Operation.UPDATE or config.exemptions.cover(
        username=request.user.username, groups=request.user.groups, namespace=request.namespace
    ):
        return False
    return _network_spec(request.object) != _network_spec(request.old_object)


def _network_spec(vm: Mapping[str, Any] | None) -> tuple[object, object]:
    template = _dig(vm, "spec", "template", "spec")
    return _dig(template, "domain", "devices", "interfaces"), _dig(template, "networks")


def _dig(data: object, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def check_patch(request: AdmissionRequest, answer: Answer, document: AdmissionReviewWire) -> None:
    """Apply the patch the response carries to the request's object, as kube-apiserver will.

    A patch that fails here would fail in kube-apiserver as an internal error, even with
    failurePolicy Ignore, so it must never leave the webhook. The operations are the
    ones `render_review` encoded (rendering is deterministic, so they are not decoded
    back from base64) and are applied strictly (`webhook.patches`) and in place: the
    object was decoded for this request alone and is not read again, and copying it
    would cost more than the whole evaluation.
    """
    if "patch" not in document["response"]:
        return
    check_engine_patch(request.object, answer.verdict.render_patch())
