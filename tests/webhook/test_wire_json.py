"""The webhook's JSON on the wire: orjson's speed, the standard library's meaning."""

from __future__ import annotations

import codecs
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policy import Cause, CauseType, Verdict
from tests.policy.strategies import json_values
from tests.webhook.fakes import FakeEngine, build
from tests.webhook.objects import hotplug_review
from webhook.reviews import ORJSON_MAX_BYTES, compact_json, decode_json

INT64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
"""What kube-apiserver sends as an integer: larger numbers it holds, and sends, as float64."""
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=12)
"""Text with every code point, lone surrogates too."""


@given(json_values(text=st.text(max_size=12), integers=INT64, infinity=False), st.booleans())
def test_a_document_decodes_as_the_standard_library_decodes_it(
    value: Any, ascii_only: bool
) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert decode_json(body) == json.loads(body)


@given(json_values(text=ANY_TEXT, integers=INT64, infinity=False))
def test_a_value_encodes_to_compact_json_that_decodes_back_to_it(value: Any) -> None:
    encoded = compact_json(value)
    assert isinstance(encoded, bytes)
    assert json.loads(encoded) == value
    assert json.loads(encoded.decode("utf-8")) == value  # UTF-8, as kube-apiserver reads it


def test_encoding_is_compact() -> None:
    assert compact_json({"a": [1, "x"], "b": {"c": None}}) == b'{"a":[1,"x"],"b":{"c":null}}'


@pytest.mark.parametrize(
    "body",
    [
        b'"\\ud800"',  # a lone surrogate escape
        b'{"name":"a\\udc00b"}',
        b"[NaN, Infinity, -Infinity]",
        b"1e400",  # beyond a double
        codecs.BOM_UTF8 + b'{"a":1}',
        '{"a":"é"}'.encode("utf-16"),
        '{"a":"é"}'.encode("utf-32-le"),
    ],
)
def test_what_orjson_refuses_the_standard_library_decodes_as_before(body: bytes) -> None:
    decoded, expected = decode_json(body), json.loads(body)
    assert json.dumps(decoded) == json.dumps(expected)  # NaN != NaN, its text is equal


def test_integers_up_to_64_bits_stay_exact_integers() -> None:
    body = b"[9223372036854775807,-9223372036854775808,18446744073709551615]"
    assert decode_json(body) == [2**63 - 1, -(2**63), 2**64 - 1]
    assert all(isinstance(n, int) for n in decode_json(body))


def test_a_larger_integer_is_read_as_kube_apiserver_sends_it_a_float() -> None:
    (value,) = decode_json(b"[100000000000000000000000]")
    assert math.isclose(value, 1e23)


@pytest.mark.parametrize("body", [b"", b"{", b'{"a":1,}', b'{"a":"\x01"}', b"\xff\xfe\xfd"])
def test_invalid_json_raises_the_standard_librarys_errors(body: bytes) -> None:
    """parse_envelope turns these into 400s by their type."""
    with pytest.raises(ValueError, match=r".") as standard:
        json.loads(body)
    with pytest.raises(type(standard.value), match=r"."):
        decode_json(body)


def test_a_large_body_is_decoded_by_the_standard_library_whose_peak_memory_is_budgeted() -> None:
    """An integer beyond 64 bits tells the decoders apart: orjson reads it as a float."""
    small, large = (
        b'{"n":100000000000000000000000,"pad":"' + b"x" * size + b'"}'
        for size in (1000, ORJSON_MAX_BYTES)
    )
    assert isinstance(decode_json(small)["n"], float)
    assert decode_json(large)["n"] == 10**23


def test_what_orjson_cannot_encode_is_encoded_by_the_standard_library() -> None:
    value = {"name": "vm-\ud800", "big": 2**70, "keys": {1: "one"}}
    assert compact_json(value) == json.dumps(value, separators=(",", ":")).encode("ascii")


def test_a_vm_name_with_a_lone_surrogate_escape_still_gets_its_review() -> None:
    """kube-apiserver never sends one; a client that does gets a well-formed answer."""
    denial = Cause(rule="plug-model", type=CauseType.NOT_SUPPORTED, field="f", message="no")
    built = build(engine=FakeEngine(verdict=Verdict(allowed=False, causes=(denial,))))
    body = json.dumps(hotplug_review()).replace('"vm-fedora"', '"vm-\\ud800"').encode()
    http = built.app.test_client().post(
        "/validate", data=body, headers={"Content-Type": "application/json"}
    )
    assert http.status_code == 200
    response = json.loads(http.get_data())["response"]
    assert response["allowed"] is False
    assert response["status"]["details"]["name"] == "vm-\ud800"
