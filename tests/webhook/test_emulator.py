"""The admission emulator itself: scripted webhooks that break the contract must be caught."""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from certs import ensure_local
from tests.harness.admission_emulator import (
    AdmissionEmulator,
    FailurePolicy,
    LocalMutator,
    ReinvocationPolicy,
    SideEffects,
    Webhook,
)
from tests.webhook.objects import fixture, running

Object = dict[str, Any]
Answer = tuple[int, str, bytes]
Script = Callable[[Object, dict[str, str]], Answer]


def reply(review: Object, **fields: Any) -> Answer:
    """A well-formed answer to `review` with `fields` in its response."""
    response = {"uid": review["request"]["uid"], "allowed": True, **fields}
    document = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    }
    return 200, "application/json", json.dumps(document).encode()


def patch(*operations: Object) -> dict[str, str]:
    encoded = base64.b64encode(json.dumps(list(operations)).encode()).decode()
    return {"patch": encoded, "patchType": "JSONPatch"}


class ScriptedWebhook:
    """An HTTPS webhook whose answers the test scripts; it records what it was sent."""

    def __init__(self, cert_dir: Path) -> None:
        self.files = ensure_local(cert_dir)
        self.script: Script = lambda review, query: reply(review)
        self.received: list[tuple[Object, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                outer.received.append((body, query))
                status, content_type, payload = outer.script(body, query)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.files.cert, self.files.key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def shared_webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScriptedWebhook]:
    webhook = ScriptedWebhook(tmp_path_factory.mktemp("scripted") / "certs")
    try:
        yield webhook
    finally:
        webhook.close()


@pytest.fixture
def scripted(shared_webhook: ScriptedWebhook) -> ScriptedWebhook:
    shared_webhook.script = lambda review, query: reply(review)
    shared_webhook.received.clear()
    return shared_webhook


def mutating(
    scripted: ScriptedWebhook,
    *,
    policy: FailurePolicy = FailurePolicy.FAIL,
    side_effects: SideEffects = SideEffects.NONE,
    timeout: int = 10,
    after: tuple[LocalMutator, ...] = (),
    reinvocation: ReinvocationPolicy = ReinvocationPolicy.NEVER,
) -> AdmissionEmulator:
    hook = Webhook(
        name="mutate.example.com",
        url=scripted.url(),
        failure_policy=policy,
        side_effects=side_effects,
        timeout_seconds=timeout,
        reinvocation_policy=reinvocation,
    )
    return AdmissionEmulator(mutating=(hook, *after), ca_file=scripted.files.ca)


def validating(
    scripted: ScriptedWebhook, *, policy: FailurePolicy = FailurePolicy.FAIL
) -> AdmissionEmulator:
    hook = Webhook(name="validate.example.com", url=scripted.url(), failure_policy=policy)
    return AdmissionEmulator(validating=(hook,), ca_file=scripted.files.ca)


def vm() -> Object:
    return running(fixture("vm-fedora-masquerade-only"))


def update(emulator: AdmissionEmulator, **options: Any) -> Any:
    return emulator.admit(operation="UPDATE", new=vm(), old=vm(), **options)


def test_each_call_carries_a_fresh_uid_the_timeout_and_the_full_request(
    scripted: ScriptedWebhook,
) -> None:
    emulator = mutating(scripted, timeout=3)
    update(emulator)
    update(emulator)
    (first, query), (second, _) = scripted.received
    assert first["request"]["uid"] != second["request"]["uid"]
    assert query == {"timeout": "3s"}
    request = first["request"]
    assert request["kind"] == {"group": "kubevirt.io", "version": "v1", "kind": "VirtualMachine"}
    assert request["operation"] == "UPDATE"
    assert request["object"] == vm()
    assert request["oldObject"] == vm()
    assert request["dryRun"] is False


def test_a_wrong_uid_is_a_calling_error_that_failure_policy_fail_turns_into_an_internal_error(
    scripted: ScriptedWebhook,
) -> None:
    scripted.script = lambda review, query: reply({"request": {"uid": "someone-else"}})
    outcome = update(mutating(scripted))
    assert not outcome.allowed
    assert outcome.code == 500
    assert 'failed calling webhook "mutate.example.com"' in outcome.message
    assert 'expected response.uid="' in outcome.message


def test_with_failure_policy_ignore_a_calling_error_is_skipped_and_annotated(
    scripted: ScriptedWebhook,
) -> None:
    scripted.script = lambda review, query: (500, "text/plain", b"boom")
    outcome = update(mutating(scripted, policy=FailurePolicy.IGNORE))
    assert outcome.allowed
    assert outcome.object == vm()
    assert outcome.audit_annotations == {
        "failed-open.mutation.webhook.admission.k8s.io/round_0_index_0": "mutate.example.com"
    }


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (lambda r, q: (200, "application/json", b"{"), "failed to decode"),
        (lambda r, q: (200, "text/html", b"<html/>"), "Content-Type"),
        (
            lambda r, q: (
                200,
                "application/json",
                json.dumps({"apiVersion": "v1", "kind": "Status"}).encode(),
            ),
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview",
        ),
        (
            lambda r, q: (
                200,
                "application/json",
                json.dumps(
                    {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
                ).encode(),
            ),
            "webhook response was absent",
        ),
        (lambda r, q: reply(r, patch="W10="), "patch but not response.patchType"),
        (lambda r, q: reply(r, patchType="JSONPatch"), "patchType but not response.patch"),
        (lambda r, q: reply(r, patch="W10=", patchType="MergePatch"), "invalid response.patchType"),
        (lambda r, q: reply(r, patch="not base64!", patchType="JSONPatch"), "cannot decode"),
    ],
)
def test_responses_that_break_the_contract_are_calling_errors(
    scripted: ScriptedWebhook, script: Script, expected: str
) -> None:
    scripted.script = script
    outcome = update(mutating(scripted))
    assert outcome.code == 500
    assert expected in outcome.message


def test_a_validating_webhook_may_not_return_a_patch(scripted: ScriptedWebhook) -> None:
    scripted.script = lambda review, query: reply(
        review, **patch({"op": "add", "path": "/metadata/labels", "value": {}})
    )
    outcome = update(validating(scripted))
    assert outcome.code == 500
    assert "validating webhook may not return response.patch[Type]" in outcome.message


def test_a_patch_that_does_not_apply_fails_the_request_even_with_failure_policy_ignore(
    scripted: ScriptedWebhook,
) -> None:
    scripted.script = lambda review, query: reply(
        review, **patch({"op": "replace", "path": "/metadata/labels/absent", "value": "x"})
    )
    outcome = update(mutating(scripted, policy=FailurePolicy.IGNORE))
    assert outcome.code == 500
    assert outcome.status is not None
    assert outcome.status["reason"] == "InternalError"


def test_a_patch_on_delete_is_an_internal_error(scripted: ScriptedWebhook) -> None:
    scripted.script = lambda review, query: reply(
        review, **patch({"op": "add", "path": "/metadata/labels", "value": {}})
    )
    outcome = mutating(scripted).admit(operation="DELETE", new=None, old=vm())
    assert outcome.code == 500
    assert "not supported for this operation" in outcome.message


def test_an_applied_patch_changes_the_object_that_would_be_stored(
    scripted: ScriptedWebhook,
) -> None:
    scripted.script = lambda review, query: reply(
        review, **patch({"op": "add", "path": "/metadata/labels", "value": {"a": "b"}})
    )
    outcome = update(mutating(scripted))
    assert outcome.allowed
    assert outcome.object is not None
    assert outcome.object["metadata"]["labels"] == {"a": "b"}


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (
            {"code": 200, "message": "nope"},
            400,
            'admission webhook "validate.example.com" denied the request: nope',
        ),
        (
            {"code": 422, "reason": "Invalid"},
            422,
            'admission webhook "validate.example.com" denied the request: Invalid',
        ),
        (
            None,
            400,
            'admission webhook "validate.example.com" denied the request without explanation',
        ),
    ],
)
def test_denials_are_shaped_like_kube_apiserver_does(
    scripted: ScriptedWebhook, status: Object | None, code: int, message: str
) -> None:
    fields: Object = {"allowed": False}
    if status is not None:
        fields["status"] = status
    scripted.script = lambda review, query: reply(review, **fields)
    outcome = update(validating(scripted))
    assert (outcome.allowed, outcome.code, outcome.message) == (False, code, message)
    assert outcome.status is not None
    assert outcome.status["status"] == "Failure"


def test_warnings_with_control_characters_are_dropped_and_duplicates_shown_once(
    scripted: ScriptedWebhook,
) -> None:
    scripted.script = lambda review, query: reply(
        review, warnings=["fine", "two\nlines", "fine", "tab\there"]
    )
    outcome = update(validating(scripted))
    assert outcome.warnings == ("fine",)
    assert len(outcome.dropped) == 2


def test_audit_annotation_keys_are_prefixed_and_invalid_ones_dropped(
    scripted: ScriptedWebhook,
) -> None:
    scripted.script = lambda review, query: reply(
        review, auditAnnotations={"good-key": "v", "bad/key": "v", "x" * 64: "v"}
    )
    outcome = update(validating(scripted))
    assert outcome.audit_annotations == {"validate.example.com/good-key": "v"}
    assert len(outcome.dropped) == 2


@pytest.mark.parametrize("side_effects", [SideEffects.SOME, SideEffects.UNKNOWN])
def test_dry_run_is_rejected_before_calling_a_webhook_with_side_effects(
    scripted: ScriptedWebhook, side_effects: SideEffects
) -> None:
    outcome = update(mutating(scripted, side_effects=side_effects), dry_run=True)
    assert outcome.code == 400
    assert "does not support dry run" in outcome.message
    assert scripted.received == []


def test_dry_run_reaches_a_webhook_without_side_effects(scripted: ScriptedWebhook) -> None:
    outcome = update(mutating(scripted, side_effects=SideEffects.NONE), dry_run=True)
    assert outcome.allowed
    assert scripted.received[0][0]["request"]["dryRun"] is True


def test_a_slow_webhook_times_out_and_its_failure_policy_decides(scripted: ScriptedWebhook) -> None:
    def slow(review: Object, query: dict[str, str]) -> Answer:
        time.sleep(1.5)
        return reply(review)

    scripted.script = slow
    failed = update(mutating(scripted, timeout=1))
    ignored = update(mutating(scripted, timeout=1, policy=FailurePolicy.IGNORE))
    assert failed.code == 500
    assert "failed calling webhook" in failed.message
    assert ignored.allowed
    assert scripted.received[0][1] == {"timeout": "1s"}


def test_a_later_mutation_reinvokes_an_if_needed_webhook_and_a_second_change_is_reported(
    scripted: ScriptedWebhook,
) -> None:
    counter = iter(range(100))
    scripted.script = lambda review, query: reply(
        review,
        **patch({"op": "add", "path": "/metadata/labels", "value": {"n": str(next(counter))}}),
    )
    other = LocalMutator(
        name="other.example.com",
        patch=lambda obj: [{"op": "add", "path": "/metadata/annotations", "value": {"o": "1"}}],
    )
    outcome = update(mutating(scripted, after=(other,), reinvocation=ReinvocationPolicy.IF_NEEDED))
    assert [(call.webhook, call.round) for call in outcome.calls] == [
        ("mutate.example.com", 0),
        ("other.example.com", 0),
        ("mutate.example.com", 1),
    ]
    assert outcome.object is not None
    assert outcome.object["metadata"]["labels"] == {"n": "1"}
    assert len(outcome.reinvocation_changes) == 1


def test_without_if_needed_no_reinvocation_happens(scripted: ScriptedWebhook) -> None:
    other = LocalMutator(
        name="other.example.com",
        patch=lambda obj: [{"op": "add", "path": "/metadata/annotations", "value": {"o": "1"}}],
    )
    outcome = update(mutating(scripted, after=(other,)))
    assert [call.round for call in outcome.calls] == [0, 0]
