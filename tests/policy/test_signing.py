"""The signed request: what the webhook signs, what the controller's one function accepts."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from policy import Context, Mode, Operation, Review, UserInfo, evaluate
from policy.annotations import (
    REQUEST,
    HotplugRequest,
    parse_request,
    render_request,
    request_id,
)
from policy.signing import (
    MIN_KEY_BYTES,
    InvalidKey,
    SigningKeys,
    request_message,
    sign_request,
    signature_valid,
    verify_request,
)
from webhook.reviews import MAX_WARNING_CHARS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vms"
KEY = b"k" * 32
OTHER_KEY = b"o" * 32
KEYS = SigningKeys(signing=KEY)
USER = UserInfo(username="jane@example.com", groups=("system:authenticated",))


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())
    return loaded


def running_vm() -> dict[str, Any]:
    vm = load("vm-fedora-running")
    vm["metadata"]["generation"] = 6
    return vm


def plugged(vm: dict[str, Any], name: str = "dyniface1") -> dict[str, Any]:
    new = copy.deepcopy(vm)
    template = new["spec"]["template"]["spec"]
    template["domain"]["devices"]["interfaces"].append({"name": name, "bridge": {}})
    template["networks"].append({"name": name, "multus": {"networkName": "new-fancy-net"}})
    return new


CONTEXT = Context(vmi=load("vmi-fedora-running"), nads=frozenset({"default/new-fancy-net"}))


def admit(
    old: dict[str, Any],
    new: dict[str, Any],
    *,
    mutating: SigningKeys | None = KEYS,
    validating: SigningKeys | None = KEYS,
    user: UserInfo = USER,
) -> tuple[bool, dict[str, Any]]:
    """Mutate, apply the patch, bump the generation as kube-apiserver does, validate;
    (allowed, the object as stored).
    """
    review = Review(operation=Operation.UPDATE, new=new, old=old, user=user, namespace="default")
    mutated = evaluate(review, CONTEXT, mode=Mode.MUTATE, keys=mutating)
    if not mutated.allowed:
        return False, new
    stored = jsonpatch.apply_patch(copy.deepcopy(new), mutated.render_patch())
    if stored["spec"] != old["spec"]:  # PrepareForUpdate of a custom resource
        stored["metadata"]["generation"] = old["metadata"]["generation"] + 1
    validated = evaluate(
        Review(operation=Operation.UPDATE, new=stored, old=old, user=user, namespace="default"),
        CONTEXT,
        mode=Mode.VALIDATE,
        keys=validating,
    )
    return validated.allowed, stored


def test_an_admitted_hot_plug_verifies_on_the_stored_vm() -> None:
    old = running_vm()
    allowed, stored = admit(old, plugged(old))
    assert allowed
    request = verify_request(stored["metadata"]["annotations"][REQUEST], stored, [KEY])
    assert request is not None
    assert (request.plug, request.unplug, request.generation) == (("dyniface1",), (), 7)
    assert request.signature.startswith("v1:")


def test_the_signature_is_hmac_sha256_over_the_documented_netstrings() -> None:
    request = HotplugRequest(id="4c062900d22c7008", plug=("nic1", "nic2"), generation=7)
    message = (
        b"27:hotplug-guard.io/request/v1,3:uid,7:default,6:vm-one,1:7,"
        b"16:4c062900d22c7008,14:4:nic1,4:nic2,,0:,"
    )
    assert request_message(request, uid="uid", namespace="default", name="vm-one") == message
    mac = hmac.new(KEY, message, hashlib.sha256).digest()
    signed = sign_request(request, uid="uid", namespace="default", name="vm-one", key=KEY)
    assert signed.signature == "v1:" + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


@given(key=st.binary(min_size=MIN_KEY_BYTES, max_size=200), names=st.lists(st.text(), max_size=4))
def test_the_signature_is_hmac_sha256_for_every_key_and_message(
    key: bytes, names: list[str]
) -> None:
    """Keys longer than SHA-256's block are hashed first, as HMAC does."""
    request = HotplugRequest(id="4c062900d22c7008", plug=tuple(names), generation=3)
    message = request_message(request, uid="uid", namespace="default", name="vm-one")
    mac = hmac.new(key, message, hashlib.sha256).digest()
    signed = sign_request(request, uid="uid", namespace="default", name="vm-one", key=key)
    assert signed.signature == "v1:" + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    assert signature_valid(
        request=signed, uid="uid", namespace="default", name="vm-one", keys=[key]
    )


def netstring(data: bytes) -> bytes:
    return str(len(data)).encode() + b":" + data + b","


# mostly ASCII, as Kubernetes names are; any code point otherwise, lone surrogates included
ANY_TEXT = st.one_of(
    st.text(st.characters(max_codepoint=0x7F)), st.text(st.characters(exclude_categories=()))
)


@given(
    texts=st.lists(ANY_TEXT, min_size=4, max_size=4),
    plug=st.lists(ANY_TEXT, max_size=3),
    unplug=st.lists(ANY_TEXT, max_size=3),
    generation=st.integers(min_value=0),
)
def test_the_message_is_the_documented_netstrings_of_any_text(
    texts: list[str], plug: list[str], unplug: list[str], generation: int
) -> None:
    """ASCII or not, lone surrogates included: the same bytes (UTF-8, surrogates passed)."""
    uid, namespace, name, ident = texts
    request = HotplugRequest(
        id=ident, plug=tuple(plug), unplug=tuple(unplug), generation=generation
    )

    def utf8(text: str) -> bytes:
        return text.encode("utf-8", "surrogatepass")

    names = [b"".join(netstring(utf8(n)) for n in names) for names in (plug, unplug)]
    expected = b"".join(
        netstring(field)
        for field in (
            b"hotplug-guard.io/request/v1",
            utf8(uid),
            utf8(namespace),
            utf8(name),
            str(generation).encode(),
            utf8(ident),
            *names,
        )
    )
    assert request_message(request, uid=uid, namespace=namespace, name=name) == expected


def test_the_signature_of_a_fixed_request_never_changes() -> None:
    """Webhook and controller replicas of different releases meet during an upgrade: a
    request signed by one must verify in the other, so the bytes signed are fixed."""
    request = HotplugRequest(
        id="4c062900d22c7008", plug=("nic1",), unplug=("nic3", "nic4"), generation=12
    )
    message = (
        b"27:hotplug-guard.io/request/v1,3:uid,7:default,6:vm-one,2:12,"
        b"16:4c062900d22c7008,7:4:nic1,,14:4:nic3,4:nic4,,"
    )
    assert request_message(request, uid="uid", namespace="default", name="vm-one") == message
    signed = sign_request(request, uid="uid", namespace="default", name="vm-one", key=KEY)
    assert signed.signature == "v1:uAWrXtOGb5KEHC3IRBM9JlQIgwZ6gIi59CpU4ojaQXM"


def test_names_json_allows_but_utf_8_cannot_encode_are_signed_all_the_same() -> None:
    """A lone surrogate (`"\\ud800"` in JSON) is signed as such, never an error."""
    request = HotplugRequest(id="4c062900d22c7008", plug=("nic\ud800",), generation=1)
    signed = sign_request(request, uid="uid", namespace="default", name="vm-one", key=KEY)
    assert signature_valid(signed, uid="uid", namespace="default", name="vm-one", keys=[KEY])
    other = HotplugRequest(
        id=request.id, plug=("nic\udc00",), generation=1, signature=signed.signature
    )
    assert not signature_valid(other, uid="uid", namespace="default", name="vm-one", keys=[KEY])


def stored_plug() -> dict[str, Any]:
    old = running_vm()
    allowed, stored = admit(old, plugged(old))
    assert allowed
    return stored


def annotation(vm: dict[str, Any]) -> str:
    value: str = vm["metadata"]["annotations"][REQUEST]
    return value


def rewritten(value: str, **fields: object) -> str:
    data = json.loads(value)
    data.update(fields)
    return json.dumps(data)


def test_a_request_does_not_verify_on_another_vm() -> None:
    stored = stored_plug()
    for key, value in (("uid", "0e4f1a52-5b0d-4d8c-9c6e-3e7f2a1b9d00"), ("name", "vm-two")):
        other = copy.deepcopy(stored)
        other["metadata"][key] = value
        assert verify_request(annotation(stored), other, [KEY]) is None
    moved = copy.deepcopy(stored)
    moved["metadata"]["namespace"] = "team-b"
    assert verify_request(annotation(stored), moved, [KEY]) is None


def test_a_request_does_not_verify_for_another_change() -> None:
    stored = stored_plug()
    value = annotation(stored)
    # the same request on a VM whose interfaces are not the ones it produced
    assert verify_request(value, plugged(stored, "dyniface2"), [KEY]) is None
    # edited fields break the signature
    for fields in ({"plug": ["dyniface2"]}, {"unplug": ["defaultnetwork"]}, {"generation": 8}):
        assert verify_request(rewritten(value, **fields), stored, [KEY]) is None


def test_a_request_claiming_a_later_generation_than_the_vm_does_not_verify() -> None:
    stored = stored_plug()
    earlier = copy.deepcopy(stored)
    earlier["metadata"]["generation"] = 6
    assert verify_request(annotation(stored), earlier, [KEY]) is None
    later = copy.deepcopy(stored)
    later["metadata"]["generation"] = 9  # an unrelated spec change since
    assert verify_request(annotation(stored), later, [KEY]) is not None


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "not json",
        "[]",
        '{"id":"4c062900d22c7008","plug":["dyniface1"],"unplug":[],"generation":7}',
        '{"id":"x","signature":"v1:\u00e9"}',
    ],
)
def test_unsigned_or_malformed_values_do_not_verify(value: object) -> None:
    assert verify_request(value, stored_plug(), [KEY]) is None


def test_only_the_holders_of_a_key_can_sign() -> None:
    stored = stored_plug()
    assert verify_request(annotation(stored), stored, [OTHER_KEY]) is None
    assert verify_request(annotation(stored), stored, [OTHER_KEY, KEY]) is not None
    assert verify_request(annotation(stored), stored, []) is None


def test_keys_shorter_than_32_bytes_are_refused_and_never_printed() -> None:
    with pytest.raises(InvalidKey, match="at least 32 bytes"):
        SigningKeys(signing=b"short")
    with pytest.raises(InvalidKey):
        SigningKeys(signing=KEY, accepted=(b"short",))
    keys = repr(SigningKeys(signing=KEY, accepted=(OTHER_KEY,)))
    assert keys == "SigningKeys(<2 keys>)"


def test_a_signature_with_characters_no_signature_has_is_forged() -> None:
    stored = stored_plug()
    for signature in ("v1:\u00e9", "v1:\u0000", "\u0130"):
        forged = rewritten(annotation(stored), signature=signature)
        assert verify_request(forged, stored, [KEY]) is None


def test_a_request_signed_with_an_unknown_key_is_forged() -> None:
    old = running_vm()
    _, stored = admit(old, plugged(old), mutating=SigningKeys(signing=OTHER_KEY), validating=None)
    allowed, _ = admit(old, stored, mutating=None, validating=KEYS)
    assert not allowed


def test_a_request_copied_from_another_vm_is_forged() -> None:
    stored = stored_plug()
    other = running_vm()
    other["metadata"]["uid"] = "0e4f1a52-5b0d-4d8c-9c6e-3e7f2a1b9d00"
    forged = plugged(other)
    forged["metadata"]["annotations"] = {REQUEST: annotation(stored)}
    review = Review(operation=Operation.UPDATE, new=forged, old=other, user=USER)
    verdict = evaluate(review, CONTEXT, mode=Mode.VALIDATE, keys=KEYS)
    assert not verdict.allowed
    assert [c.rule for c in verdict.causes] == ["guarded-annotations"]


def test_replicas_in_the_middle_of_a_key_rotation_agree() -> None:
    # one replica signs with the new key, another has not switched yet: both accept both
    switched = SigningKeys(signing=KEY, accepted=(OTHER_KEY,))
    not_yet = SigningKeys(signing=OTHER_KEY, accepted=(KEY,))
    old = running_vm()
    allowed, stored = admit(old, plugged(old), mutating=switched, validating=not_yet)
    assert allowed
    assert verify_request(annotation(stored), stored, switched.verifying) is not None
    # and reinvoking the mutation on the other replica patches nothing
    review = Review(operation=Operation.UPDATE, new=stored, old=old, user=USER)
    assert evaluate(review, CONTEXT, mode=Mode.MUTATE, keys=not_yet).patch == ()


def test_without_a_key_the_request_is_unsigned_and_never_verifies() -> None:
    old = running_vm()
    allowed, stored = admit(old, plugged(old), mutating=None, validating=None)
    assert allowed
    request = parse_request(annotation(stored))
    assert request is not None
    assert (request.signature, request.generation) == ("", 7)
    assert verify_request(annotation(stored), stored, [KEY]) is None


def test_an_unplug_still_verifies_once_kubevirt_removed_the_interface() -> None:
    """KubeVirt deletes a completed unplug's interface and network from the VM: the request
    must stay verifiable until the controller has reported it, and only for that change."""
    vm = plugged(running_vm(), "nic1")
    vm["metadata"]["generation"] = 8
    devices = vm["spec"]["template"]["spec"]["domain"]["devices"]
    devices["interfaces"][1]["state"] = "absent"
    uid = vm["metadata"]["uid"]
    request = sign_request(
        HotplugRequest(
            id=request_id(uid, [("defaultnetwork", False), ("nic1", True)]),
            unplug=("nic1",),
            generation=8,
        ),
        uid=uid,
        namespace="default",
        name="vm-fedora",
        key=KEY,
    )
    value = render_request(request)
    assert verify_request(value, vm, [KEY]) == request

    cleaned = copy.deepcopy(vm)
    del cleaned["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][1]
    del cleaned["spec"]["template"]["spec"]["networks"][1]
    cleaned["metadata"]["generation"] = 9
    assert verify_request(value, cleaned, [KEY]) == request
    # anything else changed on top does not verify
    assert verify_request(value, plugged(cleaned, "nic2"), [KEY]) is None
    # nor does a plug of the same name whose interface vanished
    plug = sign_request(
        HotplugRequest(id=request.id, plug=("nic1",), generation=8),
        uid=uid,
        namespace="default",
        name="vm-fedora",
        key=KEY,
    )
    assert verify_request(render_request(plug), cleaned, [KEY]) is None


def test_a_change_the_mutating_webhook_missed_is_validated_with_why_and_what_next() -> None:
    """The mutating webhook fails open: /validate then sees a plug without its annotations."""
    old = running_vm()
    review = Review(
        operation=Operation.UPDATE, new=plugged(old), old=old, user=USER, namespace="default"
    )
    verdict = evaluate(review, CONTEXT, mode=Mode.VALIDATE, keys=KEYS)
    assert verdict.allowed
    missed = [w for w in verdict.warnings if w.startswith("guarded-annotations: ")]
    assert missed == [
        "guarded-annotations: no ledger for this change: the mutating webhook did not answer "
        "(it fails open); check its pods",
        "guarded-annotations: no request for this hot plug: the mutating webhook did not answer "
        "(it fails open); migrate the VM",
    ]
    # kube-apiserver's guidance, which the webhook enforces by cutting longer warnings
    assert all(len(w) <= MAX_WARNING_CHARS for w in missed)
