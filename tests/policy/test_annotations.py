"""The annotation values are compact JSON that any JSON reader, and the parsers here, read back."""

from __future__ import annotations

import hashlib
import json

from hypothesis import given
from hypothesis import strategies as st

from policy.annotations import (
    HotplugRequest,
    Ledger,
    parse_ledger,
    parse_request,
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
