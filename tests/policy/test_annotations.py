"""The annotation values are compact JSON that any JSON reader, and the parsers here, read back."""

from __future__ import annotations

import hashlib
import json

from hypothesis import given
from hypothesis import strategies as st

from policy.annotations import (
    HotplugRequest,
    HotplugStatus,
    Ledger,
    Phase,
    parse_ledger,
    parse_request,
    parse_status,
    render_ledger,
    render_request,
    request_id,
)

names = st.lists(st.text(max_size=12), max_size=5).map(tuple)


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


@given(
    ident=st.text(max_size=20),
    plug=names,
    unplug=names,
    generation=st.integers(0, 2**63),
    signature=st.text(max_size=50),
)
def test_request_renders_as_compact_json(
    ident: str, plug: tuple[str, ...], unplug: tuple[str, ...], generation: int, signature: str
) -> None:
    request = HotplugRequest(
        id=ident, plug=plug, unplug=unplug, generation=generation, signature=signature
    )
    text = render_request(request)
    expected: dict[str, object] = {
        "id": ident,
        "plug": list(plug),
        "unplug": list(unplug),
        "generation": generation,
    }
    if signature:
        expected["signature"] = signature
    assert text == compact(expected)
    assert parse_request(text) == request


def test_requests_written_before_signing_still_parse() -> None:
    assert parse_request('{"id":"4c062900d22c7008","plug":["nic1"],"unplug":[]}') == (
        HotplugRequest(id="4c062900d22c7008", plug=("nic1",))
    )


@given(vmi=st.text(max_size=20), interfaces=names, booted=st.none() | st.integers(0, 300))
def test_ledger_renders_as_compact_json(
    vmi: str, interfaces: tuple[str, ...], booted: int | None
) -> None:
    ledger = Ledger(vmi=vmi, interfaces=interfaces, booted=booted)
    text = render_ledger(ledger)
    data: dict[str, object] = {"vmi": vmi, "interfaces": list(interfaces)}
    if booted is not None:
        data["booted"] = booted
    assert text == compact(data)
    assert parse_ledger(text) == ledger


def test_a_ledger_without_a_valid_boot_count_reads_as_not_recorded() -> None:
    for booted in ("5", -1, True, 2.0, None):
        text = compact({"vmi": "u", "interfaces": ["a"], "booted": booted})
        assert parse_ledger(text) == Ledger(vmi="u", interfaces=("a",))


@given(uid=st.text(max_size=20), pairs=st.lists(st.tuples(st.text(max_size=8), st.booleans())))
def test_request_id_hashes_the_sorted_interface_set(
    uid: str, pairs: list[tuple[str, bool]]
) -> None:
    canonical = compact([uid, [list(pair) for pair in sorted(pairs)]])
    expected = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert request_id(uid, pairs) == expected
    assert request_id(uid, reversed(pairs)) == expected


def test_request_id_is_stable_across_releases() -> None:
    # ids written by earlier releases must still match the same interface set
    assert (
        request_id("uid-1", [("nic1", False), ("default", False)])
        == hashlib.sha256(b'["uid-1",[["default",false],["nic1",false]]]').hexdigest()[:16]
    )


def test_a_boot_count_of_zero_is_recorded() -> None:
    # a VMI can boot without interfaces (autoattachPodInterface: false)
    ledger = parse_ledger(compact({"vmi": "u", "interfaces": [], "booted": 0}))
    assert ledger == Ledger(vmi="u", booted=0)


def test_status_reads_every_field_the_controller_writes() -> None:
    text = compact(
        {"id": "r1", "phase": "Migrating", "migration": "m-1", "attempts": 2, "message": "m"}
    )
    assert parse_status(text) == HotplugStatus(
        id="r1", phase=Phase.MIGRATING, migration="m-1", attempts=2, message="m"
    )


def test_status_fields_missing_or_of_another_type_read_as_empty() -> None:
    for extra in ({}, {"migration": 5, "attempts": "2", "message": ["m"]}, {"attempts": True}):
        status = parse_status(compact({"id": "r1", "phase": "Failed", **extra}))
        assert status == HotplugStatus(id="r1", phase=Phase.FAILED)
        assert (status.migration, status.attempts, status.message) == ("", 0, "")


MALFORMED = [None, 5, "", "not json", "[1]", '"text"', "null"]


def test_malformed_annotation_values_read_as_absent() -> None:
    requests = [*MALFORMED, compact({"plug": ["a"]}), compact({"id": 1, "plug": []})]
    statuses = [*MALFORMED, compact({"phase": "Waiting"}), compact({"id": "r", "phase": 1})]
    statuses.append(compact({"id": "r", "phase": "Unknown"}))
    ledgers = [*MALFORMED, compact({"interfaces": ["a"]}), compact({"vmi": 1})]
    assert [parse_request(text) for text in requests] == [None] * len(requests)
    assert [parse_status(text) for text in statuses] == [None] * len(statuses)
    assert [parse_ledger(text) for text in ledgers] == [None] * len(ledgers)


def test_names_that_are_not_strings_are_left_out() -> None:
    request = parse_request(compact({"id": "r", "plug": ["a", 1, None], "unplug": "b"}))
    assert request == HotplugRequest(id="r", plug=("a",))


def test_an_empty_ledger_belongs_to_no_run() -> None:
    assert (Ledger().vmi, Ledger().interfaces, Ledger().booted) == ("", (), None)
