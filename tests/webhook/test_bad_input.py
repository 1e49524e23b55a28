"""Bad input against the real service: always 400/413 or a well-formed review, no dead worker."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.policy.strategies import json_values
from tests.webhook import service
from tests.webhook.objects import hotplug_review
from tests.webhook.service import Service
from webhook.app import MAX_BODY_BYTES

Object = dict[str, Any]

JSON_VALUES = json_values(text=st.text(max_size=20), infinity=False, size=5, leaves=25)
REQUEST_KEYS = (
    "uid",
    "kind",
    "resource",
    "subResource",
    "name",
    "namespace",
    "operation",
    "userInfo",
    "object",
    "oldObject",
    "dryRun",
)
VM_PATHS = (
    ("spec",),
    ("spec", "template"),
    ("spec", "template", "spec"),
    ("spec", "template", "spec", "networks"),
    ("spec", "template", "spec", "domain", "devices"),
    ("spec", "template", "spec", "domain", "devices", "interfaces"),
    ("metadata",),
    ("metadata", "annotations"),
    ("status",),
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with service.serving(tmp_path_factory.mktemp("bad-input")) as running:
        yield running


@pytest.fixture(scope="module")
def session(served: Service) -> Iterator[requests.Session]:
    with served.session() as http:
        yield http


@pytest.fixture(scope="module")
def workers(served: Service) -> Iterator[frozenset[int]]:
    """The worker PIDs before the suite; checked after every test."""
    before = served.worker_pids()
    assert len(before) == 2
    yield before
    assert served.worker_pids() == before


@pytest.fixture(autouse=True)
def still_alive(served: Service, workers: frozenset[int]) -> Iterator[None]:
    yield
    assert served.worker_pids() == workers, "a worker died or was replaced"
    assert requests.get(served.url("/healthz"), verify=str(served.ca), timeout=5).text == "ok\n"


def check(answer: requests.Response, body: object, path: str) -> None:
    """400/413 with a text reason, or 200 with an AdmissionReview that kube-apiserver accepts."""
    if answer.status_code in (400, 413):
        assert answer.text.startswith("hotplug-guard: ")
        return
    assert answer.status_code == 200, (answer.status_code, answer.text[:300])
    document = answer.json()
    assert isinstance(body, dict)
    assert document["apiVersion"] == "admission.k8s.io/v1"
    assert document["kind"] == "AdmissionReview"
    response = document["response"]
    assert response["uid"] == body["request"]["uid"]
    assert isinstance(response["allowed"], bool)
    assert ("patch" in response) == ("patchType" in response)
    if "patch" in response:
        assert path == "/mutate"
        assert response["patchType"] == "JSONPatch"
        assert isinstance(json.loads(base64.b64decode(response["patch"], validate=True)), list)
    if not response["allowed"]:
        assert response["status"]["code"] >= 400
    for text in response.get("warnings", []):
        assert len(text) <= 120
        assert not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text)
    for key in response.get("auditAnnotations", {}):
        assert "/" not in key
        assert len(key) <= 63


def post(session: requests.Session, served: Service, path: str, data: bytes) -> requests.Response:
    return session.post(
        served.url(path), data=data, headers={"Content-Type": "application/json"}, timeout=10
    )


def truncated() -> bytes:
    return json.dumps(hotplug_review()).encode()[:-40]


def nested(depth: int) -> bytes:
    body = hotplug_review()
    body["request"]["object"]["spec"]["template"]["spec"]["networks"] = json.loads(
        "[" * depth + "]" * depth
    )
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(truncated(), id="truncated"),
        pytest.param(b"\x00\xff\xfe\x80" * 1000, id="binary"),
        pytest.param(
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", '
            b'"request": {"uid": "\xff"}}',
            id="invalid-utf8",
        ),
        pytest.param(b"null", id="null"),
        pytest.param(b'"AdmissionReview"', id="string"),
        pytest.param(b"[" * 200_000, id="deeply-nested-unclosed"),
        pytest.param(b"[" * 50_000 + b"]" * 50_000, id="deeply-nested"),
        pytest.param(nested(900), id="deep-object-inside-review"),
        pytest.param(b'{"a": ' * 20_000 + b"1" + b"}" * 20_000, id="deep-mapping"),
        pytest.param(b"1" * 5_000_000, id="huge-number"),
        pytest.param(
            json.dumps(
                {
                    "apiVersion": "admission.k8s.io/v1",
                    "kind": "AdmissionReview",
                    "request": {"uid": "u", "operation": "UPDATE", "object": [], "oldObject": 3},
                }
            ).encode(),
            id="wrong-object-types",
        ),
    ],
)
@pytest.mark.parametrize("path", ["/mutate", "/validate"])
def test_malformed_bodies_get_400_or_a_well_formed_review(
    session: requests.Session, served: Service, data: bytes, path: str
) -> None:
    answer = post(session, served, path, data)
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        body = None
    check(answer, body, path)


def tls_socket(served: Service) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(served.ca))
    raw = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def status_line(connection: ssl.SSLSocket) -> bytes:
    return connection.makefile("rb").readline()


def test_a_body_declared_over_the_limit_gets_413_before_it_is_sent(served: Service) -> None:
    with tls_socket(served) as connection:
        connection.sendall(
            b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
        )
        assert status_line(connection).startswith(b"HTTP/1.1 413")


def test_a_chunked_body_over_the_limit_gets_413_after_a_bounded_read(served: Service) -> None:
    chunk = b" " * 65536
    with tls_socket(served) as connection:
        connection.sendall(
            b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(MAX_BODY_BYTES // len(chunk) + 1):
            connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        connection.sendall(b"0\r\n\r\n")
        assert status_line(connection).startswith(b"HTTP/1.1 413")


def test_a_client_that_disconnects_mid_body_does_not_hurt_the_worker(served: Service) -> None:
    for _ in range(5):
        with tls_socket(served) as tls:
            tls.sendall(
                b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100000\r\n\r\n{"apiVersion": '
            )


def test_a_non_tls_client_does_not_hurt_the_worker(served: Service) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as raw:
        raw.sendall(b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        raw.settimeout(5)
        with contextlib.suppress(OSError):
            raw.recv(100)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(document=JSON_VALUES)
def test_arbitrary_json_documents_get_400_or_a_well_formed_review(
    session: requests.Session, served: Service, document: object
) -> None:
    check(post(session, served, "/validate", json.dumps(document).encode()), document, "/validate")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    key=st.sampled_from(REQUEST_KEYS),
    value=JSON_VALUES,
    path=st.sampled_from(["/mutate", "/validate"]),
)
def test_requests_with_any_field_replaced_get_400_or_a_well_formed_review(
    session: requests.Session, served: Service, key: str, value: object, path: str
) -> None:
    body = hotplug_review()
    body["request"][key] = value
    check(post(session, served, path, json.dumps(body).encode()), body, path)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    where=st.sampled_from(VM_PATHS),
    value=JSON_VALUES,
    side=st.sampled_from(["object", "oldObject"]),
    path=st.sampled_from(["/mutate", "/validate"]),
)
def test_virtual_machines_of_any_shape_are_judged_without_an_internal_error(
    session: requests.Session,
    served: Service,
    *,
    where: tuple[str, ...],
    value: object,
    side: str,
    path: str,
) -> None:
    body = hotplug_review()
    target = body["request"][side]
    for key in where[:-1]:
        target = target.setdefault(key, {}) if isinstance(target, dict) else target
    if isinstance(target, dict):
        target[where[-1]] = copy.deepcopy(value)
    answer = post(session, served, path, json.dumps(body).encode())
    check(answer, body, path)
    response = answer.json()["response"]
    assert response.get("status", {}).get("code") != 500, response


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_get_400(session: requests.Session, served: Service, data: bytes) -> None:
    answer = post(session, served, "/mutate", data)
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        assert answer.status_code == 400
        return
    check(answer, document, "/mutate")
