"""The WSGI app through Flask's test client, with a fake engine and a stub context source."""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

import jsonpatch
import pytest
from flask import session
from werkzeug.test import TestResponse

from policy import (
    Action,
    Cause,
    CauseType,
    Context,
    Finding,
    Mode,
    Operation,
    PatchOp,
    Review,
    Verdict,
    evaluate,
)
from policy.config import ContextUnavailable, Exemptions, PolicyConfig
from policy.deadline import Deadline
from policy.signing import SigningKeys
from tests.webhook.fakes import Built, FakeEngine, StubContext, build
from tests.webhook.objects import fixture, hotplug_review, review, running, uid_of, with_bridge_nics
from webhook import reviews
from webhook.admission import Admission
from webhook.app import MAX_BODY_BYTES, MAX_BOUND_ADAPTERS, create_app, parse_duration
from webhook.context import ContextState
from webhook.metrics import Metrics

Object = dict[str, Any]

PLUG_MODEL = Cause(
    rule="plug-model",
    type=CauseType.NOT_SUPPORTED,
    field="spec.template.spec.domain.devices.interfaces[1].model",
    message="hot plugged interfaces must use model virtio; remove 'model: e1000'",
)
ANNOTATE = PatchOp(op="add", path="/metadata/annotations", value={"hotplug-guard.io/x": "1"})


def post(built: Built, path: str, body: Object, *, query: str = "") -> TestResponse:
    return built.app.test_client().post(f"{path}{query}", json=body)


def answer_of(http: TestResponse) -> Object:
    assert http.status_code == 200, http.get_data(as_text=True)
    assert http.mimetype == "application/json"
    document: Object = http.get_json()
    return document


def sample(name: str, metrics: Any, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else float(value)


@pytest.mark.parametrize("path", ["/mutate", "/validate"])
def test_response_echoes_api_version_kind_and_request_uid(path: str) -> None:
    built = build()
    document = answer_of(post(built, path, hotplug_review(uid=uid_of("echo"))))
    assert document["apiVersion"] == "admission.k8s.io/v1"
    assert document["kind"] == "AdmissionReview"
    assert document["response"]["uid"] == uid_of("echo")
    assert document["response"]["allowed"] is True


def test_allowed_response_without_patch_carries_neither_patch_nor_patch_type() -> None:
    response = answer_of(post(build(), "/mutate", hotplug_review()))["response"]
    assert "patch" not in response
    assert "patchType" not in response
    assert "status" not in response


def test_mutate_returns_the_engine_patch_as_base64_json_patch() -> None:
    built = build(engine=FakeEngine(verdict=Verdict(allowed=True, patch=(ANNOTATE,))))
    body = hotplug_review()
    response = answer_of(post(built, "/mutate", body))["response"]
    assert response["patchType"] == "JSONPatch"
    operations = json.loads(base64.b64decode(response["patch"], validate=True))
    assert operations == [ANNOTATE.render()]
    patched = jsonpatch.apply_patch(body["request"]["object"], operations)
    assert patched["metadata"]["annotations"] == {"hotplug-guard.io/x": "1"}


def test_validate_never_returns_a_patch_even_when_the_engine_gives_one() -> None:
    built = build(engine=FakeEngine(verdict=Verdict(allowed=True, patch=(ANNOTATE,))))
    response = answer_of(post(built, "/validate", hotplug_review()))["response"]
    assert "patch" not in response
    assert "patchType" not in response


def test_each_endpoint_runs_the_engine_in_its_own_mode() -> None:
    built = build()
    post(built, "/mutate", hotplug_review())
    post(built, "/validate", hotplug_review())
    assert [mode for _, _, mode in built.engine.calls] == [Mode.MUTATE, Mode.VALIDATE]


def test_the_engine_sees_the_request_objects_user_and_namespace() -> None:
    built = build()
    body = hotplug_review(username="ops@example.com", groups=("admins",))
    post(built, "/mutate", body)
    seen, _, _ = built.engine.calls[0]
    assert seen.operation is Operation.UPDATE
    assert seen.new == body["request"]["object"]
    assert seen.old == body["request"]["oldObject"]
    assert (seen.user.username, seen.user.groups) == ("ops@example.com", ("admins",))
    assert seen.namespace == "default"


def test_denial_has_code_422_a_one_line_message_naming_the_rule_and_causes_with_fields() -> None:
    built = build(engine=FakeEngine(verdict=Verdict(allowed=False, causes=(PLUG_MODEL,))))
    response = answer_of(post(built, "/mutate", hotplug_review()))["response"]
    status = response["status"]
    assert response["allowed"] is False
    assert status["code"] == 422
    assert status["reason"] == "Invalid"
    assert status["message"] == (
        "hotplug-guard: plug-model: spec.template.spec.domain.devices.interfaces[1].model: "
        "hot plugged interfaces must use model virtio; remove 'model: e1000'"
    )
    assert status["details"]["name"] == "vm-fedora"  # kubectl: The VirtualMachine "vm-fedora"
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueNotSupported",
            "message": f"hotplug-guard: plug-model: {PLUG_MODEL.message}",
            "field": PLUG_MODEL.field,
        }
    ]


def test_several_causes_are_joined_like_kubevirt_and_more_than_ten_are_summarised() -> None:
    causes = tuple(
        Cause(rule="plug-binding", type=CauseType.FORBIDDEN, field=f"f[{i}]", message=f"m{i}")
        for i in range(12)
    )
    built = build(engine=FakeEngine(verdict=Verdict(allowed=False, causes=causes)))
    status = answer_of(post(built, "/validate", hotplug_review()))["response"]["status"]
    assert status["message"].startswith(
        "hotplug-guard: plug-binding: f[0]: m0, plug-binding: f[1]: m1, "
    )
    assert status["message"].endswith("plug-binding: f[9]: m9, and 2 more validation errors")
    assert len(status["details"]["causes"]) == 10
    assert "\n" not in status["message"]


def test_messages_with_line_breaks_are_rendered_on_one_line() -> None:
    cause = Cause(rule="plug-model", type=CauseType.INVALID, field="f", message="bad\nvalue\t!")
    built = build(engine=FakeEngine(verdict=Verdict(allowed=False, causes=(cause,))))
    status = answer_of(post(built, "/mutate", hotplug_review()))["response"]["status"]
    assert status["message"] == "hotplug-guard: plug-model: f: bad value !"


def test_warnings_have_no_control_characters_are_short_and_said_once() -> None:
    long = "restart-required: " + "word " * 60
    verdict = Verdict(
        allowed=True,
        warnings=("line one\nline two", "same", "same", long, "\x1b[31mred\x1b[0m", "nic\ud800x"),
    )
    built = build(engine=FakeEngine(verdict=verdict))
    warnings = answer_of(post(built, "/mutate", hotplug_review()))["response"]["warnings"]
    assert warnings[:2] == ["line one line two", "same"]
    assert warnings[3:] == ["[31mred [0m", "nic x"]
    assert all(len(text) <= 120 for text in warnings)
    assert warnings[2].startswith("restart-required: word word")
    assert warnings[2].endswith("word...")
    assert all(not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text) for text in warnings)


def test_a_very_long_warning_is_shortened_the_same_way_without_being_remembered() -> None:
    huge = "restart-required:\n" + "word " * 2000
    before = reviews._warning_line.cache_info().currsize
    built = build(engine=FakeEngine(verdict=Verdict(allowed=True, warnings=(huge, "short"))))
    for _ in range(2):
        warnings = answer_of(post(built, "/mutate", hotplug_review()))["response"]["warnings"]
        assert warnings[0] == "restart-required: " + "word " * 18 + "word..."
        assert len(warnings[0]) <= 120
    assert reviews._warning_line.cache_info().currsize <= before + 1  # "short" only


def test_audit_findings_become_audit_annotations_keyed_by_rule_without_slash() -> None:
    audit = (
        Cause(rule="restart-required", type=CauseType.FORBIDDEN, field="f1", message="m1"),
        Cause(rule="restart-required", type=CauseType.FORBIDDEN, field="f2", message="m2"),
        Cause(rule="odd/rule name", type=CauseType.FORBIDDEN, field="", message="m3"),
    )
    built = build(engine=FakeEngine(verdict=Verdict(allowed=True, audit=audit)))
    annotations = answer_of(post(built, "/mutate", hotplug_review()))["response"][
        "auditAnnotations"
    ]
    assert annotations == {"restart-required": "f1: m1; f2: m2", "odd-rule-name": "m3"}


def test_dry_run_requests_get_the_same_verdict_and_the_engine_knows() -> None:
    verdict = Verdict(allowed=True, patch=(ANNOTATE,), warnings=("w",))
    built = build(engine=FakeEngine(verdict=verdict))
    wet = answer_of(post(built, "/mutate", hotplug_review(uid=uid_of("u"))))
    dry = answer_of(post(built, "/mutate", hotplug_review(uid=uid_of("u"), dry_run=True)))
    assert dry == wet
    assert [seen.dry_run for seen, _, _ in built.engine.calls] == [False, True]
    assert (
        sample(
            "hotplug_guard_admission_requests_total",
            built.metrics,
            endpoint="mutate",
            operation="UPDATE",
            allowed="true",
            dry_run="true",
        )
        == 1.0
    )


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"", "application/json", "empty body"),
        (b"{}", "text/plain", "Content-Type must be application/json"),
        (b"{not json", "application/json", "not valid JSON"),
        (b"\xff\xfe\x00", "application/json", "not"),
        (b"[1, 2]", "application/json", "must be a JSON object"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "Pod"}', "application/json", "kind"),
        (
            b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}',
            "application/json",
            "admissionReviewVersions",
        ),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}',
            "application/json",
            "request is missing",
        ),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}',
            "application/json",
            "request.uid",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "nested too deeply"),
    ],
)
def test_malformed_requests_get_http_400_with_a_reason(
    body: bytes, content_type: str, expected: str
) -> None:
    built = build()
    http = built.app.test_client().post("/validate", data=body, content_type=content_type)
    assert http.status_code == 400
    assert expected in http.get_data(as_text=True)
    assert built.engine.calls == []


def _without(key: str, value: object = None) -> Object:
    body = hotplug_review()
    if value is None:
        del body["request"][key]
    else:
        body["request"][key] = value
    return body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_without("object"), "request.object is missing"),
        (_without("oldObject"), "request.oldObject is missing"),
        (_without("object", "a string"), "request.object must be an object"),
        (_without("operation", "PATCH"), "request.operation must be one of"),
        (_without("operation", "update"), "request.operation must be one of CREATE, UPDATE"),
        (_without("operation", ["UPDATE"]), "request.operation must be one of"),
        (_without("operation", {"UPDATE": 1}), "request.operation must be one of"),
        (_without("operation"), "got null"),
        (_without("kind"), "request.kind"),
        (_without("kind", {"group": 1, "kind": "VirtualMachine"}), "request.kind.group"),
        (_without("dryRun", "yes"), "request.dryRun must be a boolean"),
        (_without("userInfo", {"username": "u", "groups": "admins"}), "groups"),
        (_without("namespace", 7), "request.namespace must be a string"),
        (_without("uid", 42), "request.uid"),
    ],
)
def test_requests_with_missing_or_mistyped_fields_get_http_400(body: Object, expected: str) -> None:
    built = build()
    http = post(built, "/mutate", body)
    assert http.status_code == 400
    assert expected in http.get_data(as_text=True)
    assert (
        sample(
            "hotplug_guard_admission_invalid_requests_total",
            built.metrics,
            endpoint="mutate",
            code="400",
        )
        == 1.0
    )


def test_a_body_declared_larger_than_seven_mebibytes_is_refused_with_413_before_reading() -> None:
    built = build()
    http = built.app.test_client().post(
        "/validate",
        data=b"{}",
        content_type="application/json",
        environ_overrides={"CONTENT_LENGTH": str(MAX_BODY_BYTES + 1)},
    )
    assert http.status_code == 413
    assert http.headers["Connection"] == "close"


def test_a_body_larger_than_seven_mebibytes_is_refused_with_413() -> None:
    body = json.dumps(hotplug_review()).encode()
    padding = b" " * (MAX_BODY_BYTES + 1 - len(body))
    http = (
        build()
        .app.test_client()
        .post("/validate", data=body + padding, content_type="application/json")
    )
    assert http.status_code == 413


@pytest.mark.parametrize(("extra", "status"), [(0, 200), (1, 413)])
def test_json_containers_are_bounded_before_parsing(extra: int, status: int) -> None:
    document = hotplug_review()
    body = json.dumps(document).encode()
    brackets = body.count(b"{") + body.count(b"[")
    # brackets inside strings count too: the bound is taken before parsing
    filler = "[" * (reviews.MAX_JSON_CONTAINERS - brackets - 1 + extra)
    document["request"]["object"]["metadata"]["annotations"] = {"filler": filler}
    body = json.dumps(document).encode()
    assert body.count(b"{") + body.count(b"[") == reviews.MAX_JSON_CONTAINERS + extra
    http = build().app.test_client().post("/validate", data=body, content_type="application/json")
    assert http.status_code == status, http.get_data(as_text=True)
    if status == 413:
        assert "JSON objects and arrays" in http.get_data(as_text=True)


def test_a_body_of_exactly_seven_mebibytes_is_reviewed() -> None:
    body = json.dumps(hotplug_review()).encode()
    padding = b" " * (MAX_BODY_BYTES - len(body))
    http = (
        build()
        .app.test_client()
        .post("/validate", data=body + padding, content_type="application/json")
    )
    assert answer_of(http)["response"]["allowed"] is True


def test_an_unexpected_engine_exception_gives_an_internal_error_review_and_a_logged_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    built = build(engine=FakeEngine(error=ZeroDivisionError("boom")))
    with caplog.at_level(logging.ERROR, logger="hotplug_guard"):
        document = answer_of(post(built, "/mutate", hotplug_review(uid=uid_of("crash"))))
    response = document["response"]
    assert response["uid"] == uid_of("crash")
    assert response["allowed"] is False
    assert response["status"]["code"] == 500
    assert response["status"]["reason"] == "InternalError"
    assert "hotplug-guard: internal error" in response["status"]["message"]
    failed = [r for r in caplog.records if r.exc_info is not None]
    assert failed
    assert failed[0].__dict__["uid"] == uid_of("crash")
    assert failed[0].exc_info is not None
    assert failed[0].exc_info[0] is ZeroDivisionError
    assert sample("hotplug_guard_admission_internal_errors_total", built.metrics, endpoint="mutate")


def test_an_engine_patch_that_does_not_apply_never_leaves_the_webhook() -> None:
    broken = PatchOp(op="replace", path="/metadata/labels/missing", value="x")
    built = build(engine=FakeEngine(verdict=Verdict(allowed=True, patch=(broken,))))
    response = answer_of(post(built, "/mutate", hotplug_review()))["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 500
    assert "patch" not in response


@pytest.mark.parametrize(
    ("kind", "resource", "sub_resource"),
    [
        (
            {"group": "", "version": "v1", "kind": "Pod"},
            {"group": "", "version": "v1", "resource": "pods"},
            "",
        ),
        (
            {"group": "kubevirt.io", "version": "v1", "kind": "VirtualMachineInstance"},
            {"group": "kubevirt.io", "version": "v1", "resource": "virtualmachineinstances"},
            "",
        ),
        (
            {"group": "example.com", "version": "v1", "kind": "VirtualMachine"},
            {"group": "example.com", "version": "v1", "resource": "virtualmachines"},
            "",
        ),
        (None, None, "status"),
    ],
)
def test_requests_for_anything_but_a_kubevirt_virtual_machine_are_allowed_untouched_and_counted(
    kind: dict[str, str] | None, resource: dict[str, str] | None, sub_resource: str
) -> None:
    built = build(engine=FakeEngine(verdict=Verdict(allowed=False, causes=(PLUG_MODEL,))))
    body = hotplug_review(kind=kind, resource=resource, sub_resource=sub_resource)
    response = answer_of(post(built, "/validate", body))["response"]
    assert response == {"uid": body["request"]["uid"], "allowed": True}
    assert built.engine.calls == []
    assert (
        sample(
            "hotplug_guard_admission_misrouted_requests_total", built.metrics, endpoint="validate"
        )
        == 1.0
    )


@pytest.mark.parametrize("operation", ["DELETE", "CONNECT"])
def test_delete_and_connect_are_allowed_untouched(operation: str) -> None:
    built = build(engine=FakeEngine(verdict=Verdict(allowed=False, causes=(PLUG_MODEL,))))
    vm = running(fixture("vm-fedora-masquerade-only"))
    body = review(operation, new=None, old=vm if operation == "DELETE" else None)
    response = answer_of(post(built, "/mutate", body))["response"]
    assert response == {"uid": body["request"]["uid"], "allowed": True}
    assert built.engine.calls == []


def test_the_timeout_parameter_bounds_the_time_spent_waiting_for_context() -> None:
    built = build()
    post(built, "/mutate", hotplug_review(), query="?timeout=1s")
    post(built, "/mutate", hotplug_review(), query="?timeout=30s")
    post(built, "/mutate", hotplug_review())
    post(built, "/mutate", hotplug_review(), query="?timeout=soon")
    short, capped, default, garbage = built.context.budgets
    assert 0.15 < short <= 0.25  # 1 s less the margin and the time kept for evaluating
    assert 1.8 < capped <= 2.0
    assert 1.8 < default <= 2.0
    assert 1.8 < garbage <= 2.0


def test_long_timeout_values_cost_no_more_than_short_ones() -> None:
    # a 4,000-digit value took 0.46 s with the backtracking parser, and each new value
    # defeated the cache
    started = time.perf_counter()
    for digit in range(50):
        value = f"{digit % 10}" * 4000 + ("s" if digit % 2 else "")
        assert parse_duration(value) is None
    assert time.perf_counter() - started < 0.5
    assert parse_duration("9" * 32 + "s") is None
    assert parse_duration("1" * 30 + "s") == 1.0 * int("1" * 30)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("1m0s", 60.0),
        ("1.5s", 1.5),
        ("500ms", 0.5),
        ("", None),
        ("10", None),
        ("s", None),
        ("1h2m3.5s", 3723.5),
        ("1s2", None),
    ],
)
def test_timeouts_are_read_as_go_durations(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_unsynced_context_with_warn_evaluates_with_unknown_context_and_says_so() -> None:
    context = StubContext(state=ContextState.UNSYNCED)
    built = build(context=context, config=PolicyConfig(context_unavailable=ContextUnavailable.WARN))
    response = answer_of(post(built, "/mutate", hotplug_review()))["response"]
    assert response["allowed"] is True
    assert any("cluster context is not available" in w for w in response["warnings"])
    assert response["auditAnnotations"] == {"context": "unavailable"}
    assert len(built.engine.calls) == 1


def test_unsynced_context_with_deny_refuses_interface_changes_with_a_retry_message() -> None:
    context = StubContext(state=ContextState.UNSYNCED)
    built = build(context=context, config=PolicyConfig(context_unavailable=ContextUnavailable.DENY))
    response = answer_of(post(built, "/validate", hotplug_review()))["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 503
    assert response["status"]["message"].startswith("hotplug-guard: context-unavailable: ")
    assert "retry" in response["status"]["message"]
    assert built.engine.calls == []


def test_unsynced_context_with_deny_still_evaluates_updates_that_keep_the_interfaces() -> None:
    vm = running(fixture("vm-fedora-masquerade-only"))
    relabelled = running(fixture("vm-fedora-masquerade-only"))
    relabelled["metadata"]["labels"] = {"team": "blue"}
    built = build(
        context=StubContext(state=ContextState.UNSYNCED),
        config=PolicyConfig(context_unavailable=ContextUnavailable.DENY),
    )
    response = answer_of(post(built, "/validate", review("UPDATE", new=relabelled, old=vm)))
    assert response["response"]["allowed"] is True
    assert len(built.engine.calls) == 1


def test_unsynced_context_with_deny_lets_exempt_users_change_interfaces() -> None:
    built = build(
        context=StubContext(state=ContextState.UNSYNCED),
        config=PolicyConfig(
            context_unavailable=ContextUnavailable.DENY,
            exemptions=Exemptions(usernames=frozenset({"system:serviceaccount:kubevirt:x"})),
        ),
    )
    body = hotplug_review(username="system:serviceaccount:kubevirt:x")
    assert answer_of(post(built, "/validate", body))["response"]["allowed"] is True


def test_synced_context_is_passed_to_the_engine_without_warnings() -> None:
    known = Context(nads=frozenset({"default/new-fancy-net"}))
    built = build(context=StubContext(context=known))
    response = answer_of(post(built, "/validate", hotplug_review()))["response"]
    assert "warnings" not in response
    assert built.engine.calls[0][1] is known


def test_rule_results_are_counted_by_rule_action_and_result() -> None:
    verdict = Verdict(
        allowed=False,
        causes=(PLUG_MODEL,),
        findings=(
            Finding(cause=PLUG_MODEL, action=Action.ENFORCE),
            Finding(
                cause=Cause(
                    rule="restart-required", type=CauseType.FORBIDDEN, field="", message="m"
                ),
                action=Action.WARN,
            ),
        ),
    )
    built = build(engine=FakeEngine(verdict=verdict))
    post(built, "/validate", hotplug_review())
    assert (
        sample(
            "hotplug_guard_rule_results_total",
            built.metrics,
            rule="plug-model",
            action="enforce",
            result="denied",
        )
        == 1.0
    )
    assert (
        sample(
            "hotplug_guard_rule_results_total",
            built.metrics,
            rule="restart-required",
            action="warn",
            result="denied",
        )
        == 1.0
    )
    assert (
        sample("hotplug_guard_admission_duration_seconds_count", built.metrics, endpoint="validate")
        == 1.0
    )


def test_metrics_endpoint_serves_the_prometheus_text_format() -> None:
    built = build()
    post(built, "/mutate", hotplug_review())
    http = built.app.test_client().get("/metrics")
    text = http.get_data(as_text=True)
    assert http.status_code == 200
    assert http.content_type.startswith("text/plain")
    assert 'hotplug_guard_admission_requests_total{allowed="true",dry_run="false",' in text
    assert 'hotplug_guard_admission_duration_seconds_bucket{endpoint="mutate",le="0.0005"}' in text
    assert "hotplug_guard_context_ready" in text


def test_healthz_answers_while_readyz_follows_the_context_source() -> None:
    context = StubContext(state=ContextState.UNSYNCED)
    client = build(context=context).app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503
    context.state = ContextState.SYNCED
    assert client.get("/readyz").status_code == 200


def test_the_review_log_line_names_the_request_and_never_holds_the_object(
    caplog: pytest.LogCaptureFixture,
) -> None:
    verdict = Verdict(
        allowed=False,
        causes=(PLUG_MODEL,),
        findings=(Finding(cause=PLUG_MODEL, action=Action.ENFORCE),),
    )
    built = build(engine=FakeEngine(verdict=verdict))
    body = hotplug_review(uid=uid_of("log"), username="ops@example.com")
    body["request"]["object"]["spec"]["template"]["spec"]["volumes"].append(
        {"name": "cloudinit", "cloudInitNoCloud": {"userData": "password: s3cret-value"}}
    )
    with caplog.at_level(logging.INFO, logger="hotplug_guard"):
        post(built, "/mutate", body)
    (line,) = [r for r in caplog.records if r.getMessage() == "review"]
    fields = line.__dict__
    assert fields["uid"] == uid_of("log")
    assert fields["vm"] == "default/vm-fedora"
    assert fields["operation"] == "UPDATE"
    assert fields["user"] == "ops@example.com"
    assert fields["allowed"] is False
    assert fields["rules"] == ["plug-model"]
    assert fields["duration_ms"] >= 0
    assert "s3cret-value" not in json.dumps(fields, default=str)


@pytest.mark.parametrize("uid", ["", "u", "x" * (3 * 1024 * 1024), "3d2b0c5e-uid", 7])
def test_a_uid_that_is_not_a_uuid_is_refused_without_being_echoed(uid: object) -> None:
    body = hotplug_review()
    body["request"]["uid"] = uid
    http = post(build(), "/validate", body)
    assert http.status_code == 400
    assert "request.uid must be a UUID" in http.get_data(as_text=True)
    assert len(http.get_data()) < 200


class SlowSteps:
    """The real engine, whose every step (between two deadline checks) takes `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(
        self,
        review: Review,
        context: Context,
        config: PolicyConfig,
        *,
        mode: Mode,
        keys: SigningKeys | None,
        deadline: Deadline,
    ) -> Verdict:
        seconds = self.seconds

        class Slow:
            def expired(self) -> bool:
                time.sleep(seconds)
                return deadline.expired()

        return evaluate(review, context, config, mode=mode, keys=keys, deadline=Slow())


def build_slow(seconds: float) -> Built:
    metrics = Metrics()
    admission = Admission(evaluate=SlowSteps(seconds), config=PolicyConfig(), context=StubContext())
    return Built(
        app=create_app(admission=admission, metrics=metrics),
        engine=FakeEngine(),
        context=StubContext(),
        metrics=metrics,
    )


def slow_plug() -> Object:
    old = running(fixture("vm-fedora-masquerade-only"))
    new = with_bridge_nics(old, ["nic1"], network="net-a")
    return review("UPDATE", new=new, old=old)


def test_a_review_that_reaches_its_deadline_is_refused_by_validate_not_answered_late() -> None:
    built = build_slow(0.2)
    started = time.monotonic()
    http = post(built, "/validate", slow_plug(), query="?timeout=1s")
    elapsed = time.monotonic() - started
    response = answer_of(http)["response"]
    assert elapsed < 1.0, "answered after kube-apiserver gave up"
    assert response["allowed"] is False
    assert response["status"]["code"] == 504
    assert response["status"]["message"].startswith("hotplug-guard: deadline: ")
    assert (
        sample(
            "hotplug_guard_admission_deadline_exceeded_total", built.metrics, endpoint="validate"
        )
        == 1
    )


def test_a_mutation_that_reaches_its_deadline_lets_the_request_through_unpatched() -> None:
    built = build_slow(0.2)
    started = time.monotonic()
    response = answer_of(post(built, "/mutate", slow_plug(), query="?timeout=1s"))["response"]
    assert time.monotonic() - started < 1.0
    assert response["allowed"] is True
    assert "patch" not in response
    assert any("did not finish within its time budget" in w for w in response["warnings"])


def test_a_review_within_its_deadline_is_judged_as_usual() -> None:
    document = answer_of(post(build_slow(0.0), "/validate", slow_plug(), query="?timeout=3s"))
    assert document["response"]["allowed"] is True


def test_kept_url_bindings_route_each_request_by_its_own_path_method_and_host() -> None:
    built = build()
    client = built.app.test_client()
    for _ in range(2):  # the second time from the kept bindings
        assert answer_of(post(built, "/validate", hotplug_review(), query="?timeout=10s"))
        assert answer_of(post(built, "/mutate", hotplug_review(), query="?timeout=10s"))
        assert client.get("/validate").status_code == 405
        assert client.post("/nowhere", json={}).status_code == 404
        assert client.get("/healthz", headers={"Host": "webhook.example:8443"}).status_code == 200


def test_with_trusted_hosts_configured_flask_binds_and_checks_every_request() -> None:
    built = build()
    built.app.config["TRUSTED_HOSTS"] = ["webhook.example"]
    client = built.app.test_client()
    for _ in range(2):
        assert client.get("/healthz", headers={"Host": "webhook.example"}).status_code == 200
        assert client.get("/healthz", headers={"Host": "elsewhere.example"}).status_code == 400
    assert built.app._adapters == {}  # type: ignore[attr-defined]


def test_url_bindings_kept_are_bounded() -> None:
    built = build()
    client = built.app.test_client()
    for number in range(3 * MAX_BOUND_ADAPTERS):
        assert client.get(f"/healthz?n={number}").status_code == 200
    assert len(built.app._adapters) == MAX_BOUND_ADAPTERS  # type: ignore[attr-defined]
    assert client.get("/healthz?n=-1").status_code == 200


def test_the_webhook_keeps_no_sessions() -> None:
    built = build()
    app = built.app
    opened = []
    for _ in range(2):  # one null session for every request, not one made per request
        with app.test_request_context("/healthz", headers={"Cookie": "session=forged"}):
            opened.append(session._get_current_object())  # type: ignore[attr-defined]
    assert opened[0] is opened[1]
    assert not opened[0]
    with (
        app.test_request_context("/healthz"),
        pytest.raises(RuntimeError, match="session is unavailable"),
    ):
        session["user"] = "alice"
    answer = answer_of(post(built, "/validate", hotplug_review()))
    assert answer["response"]["allowed"] is True
    assert "Set-Cookie" not in post(built, "/validate", hotplug_review()).headers
