"""Helpers of the hot plug rules that messages are written with."""

from __future__ import annotations

from policy.transitions import flow


def test_flow_writes_yaml_flow_style_with_the_name_first() -> None:
    value = {
        "masquerade": {},
        "name": "default",
        "ports": [{"name": "http", "port": 80}, 443],
        "on": True,
        "off": False,
        "none": None,
    }
    assert flow(value) == (
        "{name: default, masquerade: {}, ports: [{name: http, port: 80}, 443], on: true, "
        "off: false, none: null}"
    )
    assert flow([]) == "[]"
