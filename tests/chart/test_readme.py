"""The chart's README documents every value of values.schema.json with its default."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from tests.chart.manifests import CHART, chart

README = (CHART / "README.md").read_text()
VALUES_TABLE = README.split("\n## Values\n", 1)[1]
ROW = re.compile(r"^\| `([A-Za-z.]+)` \| (.*?) \|(?: .*)? \|$", re.M)
# a default too long for the table, said in words
IN_WORDS = {"policy.rules"}


def leaves(schema: Mapping[str, Any], path: tuple[str, ...] = ()) -> Iterator[str]:
    """Dotted keys of the schema's leaves; `policy` one level deep (the README's config table
    documents the keys below)."""
    properties = schema.get("properties")
    below_policy = len(path) > 1 and path[0] == "policy"
    if properties and not below_policy:
        for key, child in properties.items():
            yield from leaves(child, (*path, key))
    else:
        yield ".".join(path)


def value_at(values: Mapping[str, Any], key: str) -> Any:
    found: Any = values
    for part in key.split("."):
        found = found[part]
    return found


def test_the_values_table_lists_every_value_of_the_schema_once() -> None:
    rows = [key for key, _ in ROW.findall(VALUES_TABLE)]
    assert len(rows) == len(set(rows))
    schema = chart().schema
    assert schema is not None
    assert set(rows) == set(leaves(schema))


def test_the_values_table_gives_the_defaults_of_values_yaml() -> None:
    values = chart().values
    for key, default in ROW.findall(VALUES_TABLE):
        if key in IN_WORDS:
            continue
        assert default.startswith("`"), f"{key}: {default}"
        assert default.endswith("`"), f"{key}: {default}"
        assert yaml.safe_load(default.strip("`")) == value_at(values, key), key


def test_the_rules_default_said_in_words_is_the_shipped_one() -> None:
    rules = chart().values["policy"]["rules"]
    assert {action for rule, action in rules.items() if rule != "restart-required"} == {"enforce"}
    assert rules["restart-required"] == "warn"


def test_the_readme_is_packaged_with_the_chart() -> None:
    """`helm show readme` prints it."""
    assert [f["data"] for f in chart().files if f["name"] == "README.md"] == [README]
