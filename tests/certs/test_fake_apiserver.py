"""The fake API server answers the real `kubernetes` client as a kube-apiserver would."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch

from tests.harness.fake_apiserver import FakeApiServer, ResourceType

KUBEVIRT = ("kubevirt.io", "v1")


# the client's Watch and kubeconfig loader carry no type hints
_WATCH: Any = watch.Watch
_CLIENT_FROM_KUBECONFIG: Any = config.new_client_from_config


def _status(error: client.ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(error.body or "{}")
    return body


def _fields(model: Any) -> dict[str, Any]:
    """A typed client model as a dict of its (snake_case) fields, for plain assertions."""
    fields: dict[str, Any] = model.to_dict()
    return fields


def _json(value: object) -> dict[str, Any]:
    """A response the client types as `object` (custom objects, delete results)."""
    assert isinstance(value, dict)
    return value


def _watch(list_function: Callable[..., object], *args: Any, **kwargs: Any) -> Iterator[Any]:
    """Watch events as plain JSON dicts: {"type": ..., "object": {...}}."""
    events: Iterator[Any] = _WATCH().stream(list_function, *args, deserialize=False, **kwargs)
    return events


def _failure(call: Callable[[], object]) -> tuple[int, dict[str, Any]]:
    with pytest.raises(client.ApiException) as caught:
        call()
    return caught.value.status, _status(caught.value)


def _secret(name: str, **labels: str) -> client.V1Secret:
    return client.V1Secret(
        metadata=client.V1ObjectMeta(name=name, labels=labels or None), data={"k": "dg=="}
    )


def _vm(name: str, *, running: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name},
        "spec": {"running": running},
        "status": {"printableStatus": "Stopped"},
    }


@pytest.fixture
def core(fake_apiserver: FakeApiServer) -> client.CoreV1Api:
    return client.CoreV1Api(fake_apiserver.api_client())


@pytest.fixture
def custom(fake_apiserver: FakeApiServer) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(fake_apiserver.api_client())


def test_created_secret_gets_uid_timestamp_and_resource_version(core: client.CoreV1Api) -> None:
    created = _fields(core.create_namespaced_secret("ns", _secret("a")))["metadata"]

    assert created["uid"]
    assert created["creation_timestamp"] is not None
    assert int(created["resource_version"]) > 0
    assert core.read_namespaced_secret("a", "ns").data == {"k": "dg=="}


def test_each_change_gets_a_higher_resource_version(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_secret("ns", _secret("a"))
    created.data = {"k": "dw=="}
    replaced = core.replace_namespaced_secret("a", "ns", created)
    core.create_namespaced_secret("ns", _secret("b"))
    listed = core.list_namespaced_secret("ns")

    versions = [
        int(_fields(model)["metadata"]["resource_version"]) for model in (created, replaced, listed)
    ]
    assert versions == sorted(set(versions))


def test_update_with_a_stale_resource_version_is_a_409_conflict_status(
    core: client.CoreV1Api,
) -> None:
    stale = core.create_namespaced_secret("ns", _secret("a"))
    core.patch_namespaced_secret("a", "ns", {"data": {"k": "eA=="}})

    code, status = _failure(lambda: core.replace_namespaced_secret("a", "ns", stale))

    assert code == 409
    assert status["kind"] == "Status"
    assert status["reason"] == "Conflict"
    assert status["details"] == {"name": "a", "kind": "secrets"}
    assert "the object has been modified" in status["message"]


def test_update_without_a_change_keeps_the_resource_version(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_secret("ns", _secret("a"))

    replaced = core.replace_namespaced_secret("a", "ns", created)

    assert _fields(replaced)["metadata"] == _fields(created)["metadata"]


def test_creating_an_existing_object_is_409_already_exists(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("ns", _secret("a"))

    code, status = _failure(lambda: core.create_namespaced_secret("ns", _secret("a")))

    assert (code, status["reason"]) == (409, "AlreadyExists")


def test_reading_a_missing_object_is_404_not_found(core: client.CoreV1Api) -> None:
    code, status = _failure(lambda: core.read_namespaced_secret("missing", "ns"))

    assert (code, status["reason"], status["message"]) == (
        404,
        "NotFound",
        'secrets "missing" not found',
    )


def test_deleted_object_is_gone(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("ns", _secret("a"))

    deleted = core.delete_namespaced_secret("a", "ns")

    assert _json(deleted)["status"] == "Success"
    assert _failure(lambda: core.delete_namespaced_secret("a", "ns"))[0] == 404


def test_generate_name_gets_a_random_suffix(core: client.CoreV1Api) -> None:
    secret = client.V1Secret(metadata=client.V1ObjectMeta(generate_name="token-"))

    name = _fields(core.create_namespaced_secret("ns", secret))["metadata"]["name"]

    assert re.fullmatch(r"token-[a-z0-9]{5}", name)


def test_create_without_a_name_is_422_invalid(core: client.CoreV1Api) -> None:
    code, status = _failure(lambda: core.create_namespaced_secret("ns", client.V1Secret()))

    assert (code, status["reason"]) == (422, "Invalid")


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["a", "b"]),
        ("app==web,tier!=db", ["a"]),
        ("tier in (db, cache)", ["b", "c"]),
        ("tier notin (db)", ["a", "c"]),
        ("tier", ["b", "c"]),
        ("!tier", ["a"]),
    ],
)
def test_list_filters_by_label_selector(
    core: client.CoreV1Api, selector: str, expected: list[str]
) -> None:
    core.create_namespaced_secret("ns", _secret("a", app="web"))
    core.create_namespaced_secret("ns", _secret("b", app="web", tier="db"))
    core.create_namespaced_secret("ns", _secret("c", tier="cache"))

    listed = _fields(core.list_namespaced_secret("ns", label_selector=selector))

    assert [item["metadata"]["name"] for item in listed["items"]] == expected


def test_list_filters_by_field_selector_and_namespace(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("ns", _secret("a"))
    core.create_namespaced_secret("ns", _secret("b"))
    core.create_namespaced_secret("other", _secret("a"))

    def names(listed: client.V1SecretList) -> list[tuple[str, str]]:
        items = _fields(listed)["items"]
        return [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items]

    by_name = core.list_namespaced_secret("ns", field_selector="metadata.name=a")
    everywhere = core.list_secret_for_all_namespaces(field_selector="metadata.name=a")
    elsewhere = core.list_secret_for_all_namespaces(field_selector="metadata.namespace!=ns")

    assert names(by_name) == [("ns", "a")]
    assert names(everywhere) == [("ns", "a"), ("other", "a")]
    assert names(elsewhere) == [("other", "a")]


def test_unsupported_field_selector_is_400_bad_request(core: client.CoreV1Api) -> None:
    code, status = _failure(
        lambda: core.list_namespaced_secret("ns", field_selector="spec.nodeName=x")
    )

    assert (code, status["reason"]) == (400, "BadRequest")


def test_strategic_merge_patch_on_a_builtin_merges_maps(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("ns", _secret("a", app="web"))

    patched = core.patch_namespaced_secret("a", "ns", {"metadata": {"labels": {"tier": "db"}}})

    assert _fields(patched)["metadata"]["labels"] == {"app": "web", "tier": "db"}


def test_json_patch_applies_operations(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("ns", _secret("a"))

    patched = core.patch_namespaced_secret(
        "a", "ns", [{"op": "add", "path": "/data/extra", "value": "eA=="}]
    )

    assert patched.data == {"k": "dg==", "extra": "eA=="}


def test_json_patch_whose_test_fails_is_422(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("ns", _secret("a"))
    patch = [{"op": "test", "path": "/data/k", "value": "other"}]

    code, status = _failure(lambda: core.patch_namespaced_secret("a", "ns", patch))

    assert (code, status["reason"]) == (422, "Invalid")


def test_patch_naming_a_stale_resource_version_is_409(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_secret("ns", _secret("a"))
    core.patch_namespaced_secret("a", "ns", {"metadata": {"labels": {"x": "1"}}})
    patch = {"metadata": {"resourceVersion": _fields(created)["metadata"]["resource_version"]}}

    code, status = _failure(lambda: core.patch_namespaced_secret("a", "ns", patch))

    assert (code, status["reason"]) == (409, "Conflict")


def test_merge_patch_on_a_custom_object_removes_null_fields(
    custom: client.CustomObjectsApi,
) -> None:
    custom.create_namespaced_custom_object(*KUBEVIRT, "ns", "virtualmachines", _vm("vm"))
    patch = {"spec": {"running": None, "runStrategy": "Always"}}

    patched = _json(
        custom.patch_namespaced_custom_object(*KUBEVIRT, "ns", "virtualmachines", "vm", patch)
    )

    assert patched["spec"] == {"runStrategy": "Always"}


def test_strategic_merge_patch_on_a_custom_object_is_415(
    custom: client.CustomObjectsApi,
) -> None:
    custom.create_namespaced_custom_object(*KUBEVIRT, "ns", "virtualmachines", _vm("vm"))

    code, status = _failure(
        lambda: custom.patch_namespaced_custom_object(
            *KUBEVIRT,
            "ns",
            "virtualmachines",
            "vm",
            {"spec": {}},
            _content_type="application/strategic-merge-patch+json",
        )
    )

    assert (code, status["reason"]) == (415, "UnsupportedMediaType")


def test_custom_object_update_requires_a_resource_version(
    custom: client.CustomObjectsApi,
) -> None:
    custom.create_namespaced_custom_object(*KUBEVIRT, "ns", "virtualmachines", _vm("vm"))

    code, status = _failure(
        lambda: custom.replace_namespaced_custom_object(
            *KUBEVIRT, "ns", "virtualmachines", "vm", _vm("vm", running=True)
        )
    )

    assert (code, status["reason"]) == (422, "Invalid")


def test_status_changes_only_through_the_status_subresource(
    custom: client.CustomObjectsApi,
) -> None:
    vm = ("kubevirt.io", "v1", "ns", "virtualmachines")
    created = _json(custom.create_namespaced_custom_object(*vm, _vm("vm")))
    version = created["metadata"]["resourceVersion"]
    sent = _vm("vm", running=True) | {"status": {"printableStatus": "Running"}}
    sent["metadata"]["resourceVersion"] = version
    main = _json(custom.replace_namespaced_custom_object(*vm, "vm", sent))
    sent = _vm("vm", running=False) | {"status": {"printableStatus": "Running"}}
    sent["metadata"]["resourceVersion"] = main["metadata"]["resourceVersion"]
    status = _json(custom.replace_namespaced_custom_object_status(*vm, "vm", sent))

    assert "status" not in created
    assert (main["spec"], main.get("status")) == ({"running": True}, None)
    assert (status["spec"], status["status"]) == ({"running": True}, {"printableStatus": "Running"})


def test_generation_counts_spec_changes_only(custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(*KUBEVIRT, "ns", "virtualmachines", _vm("vm"))
    labelled = _json(
        custom.patch_namespaced_custom_object(
            *KUBEVIRT, "ns", "virtualmachines", "vm", {"metadata": {"labels": {"a": "b"}}}
        )
    )
    changed = _json(
        custom.patch_namespaced_custom_object(
            *KUBEVIRT, "ns", "virtualmachines", "vm", {"spec": {"running": True}}
        )
    )

    assert labelled["metadata"]["generation"] == 1
    assert changed["metadata"]["generation"] == 2


def test_delete_of_an_object_with_finalizers_waits_for_them(
    custom: client.CustomObjectsApi, fake_apiserver: FakeApiServer
) -> None:
    vm = _vm("vm")
    vm["metadata"]["finalizers"] = ["example.com/cleanup"]
    custom.create_namespaced_custom_object(*KUBEVIRT, "ns", "virtualmachines", vm)

    marked = _json(custom.delete_namespaced_custom_object(*KUBEVIRT, "ns", "virtualmachines", "vm"))
    custom.patch_namespaced_custom_object(
        *KUBEVIRT, "ns", "virtualmachines", "vm", {"metadata": {"finalizers": None}}
    )

    assert marked["metadata"]["deletionTimestamp"]
    assert fake_apiserver.get("kubevirt.io/v1", "VirtualMachine", "ns", "vm") is None


def test_webhook_configurations_are_cluster_scoped(fake_apiserver: FakeApiServer) -> None:
    api = client.AdmissionregistrationV1Api(fake_apiserver.api_client())
    webhook = client.V1ValidatingWebhook(
        name="vm.example.com",
        admission_review_versions=["v1"],
        side_effects="None",
        client_config=client.AdmissionregistrationV1WebhookClientConfig(ca_bundle="Y2E="),
    )
    configuration = client.V1ValidatingWebhookConfiguration(
        metadata=client.V1ObjectMeta(name="guard"), webhooks=[webhook]
    )
    api.create_validating_webhook_configuration(configuration)
    patch = [{"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": "bmV3"}]
    api.patch_validating_webhook_configuration("guard", patch)

    stored = fake_apiserver.get(
        "admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", None, "guard"
    )
    listed = _fields(api.list_validating_webhook_configuration())
    assert stored is not None
    assert "namespace" not in stored["metadata"]
    assert stored["webhooks"][0]["clientConfig"]["caBundle"] == "bmV3"
    assert [item["metadata"]["name"] for item in listed["items"]] == ["guard"]


def test_lease_update_is_conflict_safe(fake_apiserver: FakeApiServer) -> None:
    api = client.CoordinationV1Api(fake_apiserver.api_client())

    def lease(holder: str, version: str | None = None) -> client.V1Lease:
        return client.V1Lease(
            metadata=client.V1ObjectMeta(name="leader", resource_version=version),
            spec=client.V1LeaseSpec(holder_identity=holder, lease_duration_seconds=15),
        )

    created = _fields(api.create_namespaced_lease("ns", lease("a")))
    version = created["metadata"]["resource_version"]
    api.replace_namespaced_lease("leader", "ns", lease("b", version))

    code, _ = _failure(lambda: api.replace_namespaced_lease("leader", "ns", lease("c", version)))

    assert code == 409
    assert _fields(api.read_namespaced_lease("leader", "ns"))["spec"]["holder_identity"] == "b"


def _version(model: Any) -> str:
    version: str = _fields(model)["metadata"]["resource_version"]
    return version


def _summary(event: Any) -> tuple[str, str]:
    return event["type"], event["object"]["metadata"].get("name", "")


def test_watch_streams_added_modified_deleted_in_order(core: client.CoreV1Api) -> None:
    core.create_namespaced_secret("ns", _secret("existing"))
    start = _version(core.list_namespaced_secret("ns"))
    events: list[Any] = []
    stream = _watch(core.list_namespaced_secret, "ns", resource_version=start, timeout_seconds=10)

    def read_three() -> None:
        for event in stream:
            events.append(event)
            if len(events) == 3:
                return

    reader = threading.Thread(target=read_three)
    reader.start()
    created = core.create_namespaced_secret("ns", _secret("a"))
    created.data = {"k": "eA=="}
    core.replace_namespaced_secret("a", "ns", created)
    core.delete_namespaced_secret("a", "ns")
    reader.join(timeout=10)

    assert [_summary(event) for event in events] == [
        ("ADDED", "a"),
        ("MODIFIED", "a"),
        ("DELETED", "a"),
    ]
    versions = [int(event["object"]["metadata"]["resourceVersion"]) for event in events]
    assert versions == sorted(set(versions))
    assert versions[0] > int(start)


def test_watch_without_resource_version_starts_with_the_current_state(
    core: client.CoreV1Api,
) -> None:
    core.create_namespaced_secret("ns", _secret("a"))
    core.create_namespaced_secret("ns", _secret("b"))

    events = [
        _summary(event) for event in _watch(core.list_namespaced_secret, "ns", timeout_seconds=1)
    ]

    assert events == [("ADDED", "a"), ("ADDED", "b")]


def test_watch_ends_after_timeout_seconds(core: client.CoreV1Api) -> None:
    started = time.monotonic()

    events = list(_watch(core.list_namespaced_secret, "ns", timeout_seconds=1))

    assert events == []
    assert 0.9 < time.monotonic() - started < 5


def test_watch_sends_bookmarks_when_allowed(
    core: client.CoreV1Api, fake_apiserver: FakeApiServer
) -> None:
    fake_apiserver.bookmark_interval = 0.2
    start = _version(core.list_namespaced_secret("ns"))

    stream = _watch(
        core.list_namespaced_secret,
        "ns",
        resource_version=start,
        allow_watch_bookmarks=True,
        timeout_seconds=1,
    )
    events = list(stream)

    assert events
    assert {event["type"] for event in events} == {"BOOKMARK"}
    assert {event["object"]["metadata"]["resourceVersion"] for event in events} == {start}


def test_watch_from_a_compacted_resource_version_is_410_gone(
    core: client.CoreV1Api, fake_apiserver: FakeApiServer
) -> None:
    old = _version(core.create_namespaced_secret("ns", _secret("a")))
    core.create_namespaced_secret("ns", _secret("b"))
    fake_apiserver.compact()

    with pytest.raises(client.ApiException) as caught:
        # deserialized events: the client turns an ERROR event into an ApiException
        list(_WATCH().stream(core.list_namespaced_secret, "ns", resource_version=old))

    assert caught.value.status == 410


def test_watch_filters_by_label_selector(
    core: client.CoreV1Api, fake_apiserver: FakeApiServer
) -> None:
    start = str(fake_apiserver.resource_version)
    core.create_namespaced_secret("ns", _secret("other"))
    core.create_namespaced_secret("ns", _secret("mine", app="guard"))

    stream = _watch(
        core.list_namespaced_secret,
        "ns",
        label_selector="app=guard",
        resource_version=start,
        timeout_seconds=1,
    )

    assert [_summary(event) for event in stream] == [("ADDED", "mine")]


def test_seeded_objects_are_visible_to_the_client(
    fake_apiserver: FakeApiServer, custom: client.CustomObjectsApi
) -> None:
    vm = _vm("seeded")
    vm["metadata"]["namespace"] = "ns"
    fake_apiserver.put(vm)

    read = _json(custom.get_namespaced_custom_object(*KUBEVIRT, "ns", "virtualmachines", "seeded"))
    stored = fake_apiserver.objects("kubevirt.io/v1", "VirtualMachine")

    assert read["status"] == {"printableStatus": "Stopped"}
    assert [obj["metadata"]["name"] for obj in stored] == ["seeded"]


def test_request_log_names_verbs_and_paths(
    core: client.CoreV1Api, fake_apiserver: FakeApiServer
) -> None:
    core.create_namespaced_secret("ns", _secret("a"))
    core.read_namespaced_secret("a", "ns")
    core.list_namespaced_secret("ns")

    assert [(r.verb, r.path) for r in fake_apiserver.requests] == [
        ("create", "/api/v1/namespaces/ns/secrets"),
        ("get", "/api/v1/namespaces/ns/secrets/a"),
        ("list", "/api/v1/namespaces/ns/secrets"),
    ]


def test_injected_failure_hits_only_the_next_matching_requests(
    core: client.CoreV1Api, fake_apiserver: FakeApiServer
) -> None:
    fault = fake_apiserver.inject(verb="create", resource="secrets", status=500, times=1)

    code, status = _failure(lambda: core.create_namespaced_secret("ns", _secret("a")))
    core.create_namespaced_secret("ns", _secret("a"))

    assert (code, status["reason"]) == (500, "InternalError")
    assert fault.hits == 1


def test_injected_delay_slows_the_request_down(
    core: client.CoreV1Api, fake_apiserver: FakeApiServer
) -> None:
    fake_apiserver.inject(verb="list", status=None, delay=0.3)
    started = time.monotonic()

    core.list_namespaced_secret("ns")

    assert time.monotonic() - started >= 0.3


def test_kubeconfig_points_the_client_at_the_fake(
    fake_apiserver: FakeApiServer, tmp_path: Path
) -> None:
    path = fake_apiserver.write_kubeconfig(tmp_path / "kubeconfig")
    api = client.CoreV1Api(_CLIENT_FROM_KUBECONFIG(config_file=str(path)))

    api.create_namespaced_secret("ns", _secret("a"))

    assert fake_apiserver.get("v1", "secrets", "ns", "a") is not None


def test_registering_a_resource_type_serves_it(fake_apiserver: FakeApiServer) -> None:
    fake_apiserver.register(
        ResourceType(
            group="example.com", version="v1", kind="Widget", plural="widgets", custom=True
        )
    )
    api = client.CustomObjectsApi(fake_apiserver.api_client())

    api.create_namespaced_custom_object(
        "example.com", "v1", "ns", "widgets", {"kind": "Widget", "metadata": {"name": "w"}}
    )

    assert fake_apiserver.get("example.com/v1", "Widget", "ns", "w") is not None


def test_concurrent_read_modify_write_loses_no_update(fake_apiserver: FakeApiServer) -> None:
    api = client.CoreV1Api(fake_apiserver.api_client())
    counter = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="n"), data={"n": "0"})
    api.create_namespaced_config_map("ns", counter)
    conflicts: list[int] = []

    def increment(times: int) -> None:
        done = 0
        while done < times:
            current = api.read_namespaced_config_map("n", "ns")
            current.data = {"n": str(int(_fields(current)["data"]["n"]) + 1)}
            try:
                api.replace_namespaced_config_map("n", "ns", current)
            except client.ApiException as error:
                conflicts.append(error.status)
                continue
            done += 1

    workers = [threading.Thread(target=increment, args=(10,)) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert api.read_namespaced_config_map("n", "ns").data == {"n": "60"}
    assert set(conflicts) <= {409}
