"""The chart's and the README's lists of rules follow the registry (policy/catalogue.py).

Both are written by hand, with comments and prose a record has no place for; these
tests name the one that lags behind: a rule missing, a default changed, the order.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from policy import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "hotplug-guard"
REGISTRY = [(rule.id.value, rule.default.value) for rule in CATALOGUE]


def test_the_chart_values_list_every_rule_in_registry_order() -> None:
    rules = yaml.safe_load((CHART / "values.yaml").read_text())["policy"]["rules"]
    assert list(rules.items()) == REGISTRY


def test_the_chart_schema_lists_every_rule_in_registry_order() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    rules = schema["properties"]["policy"]["properties"]["rules"]["properties"]
    assert list(rules) == [rule_id for rule_id, _ in REGISTRY]


def test_the_readme_rule_table_lists_every_rule_in_registry_order() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `([a-z-]+)` \| (enforce|warn|audit|off) \|", readme, re.M)
    assert rows == REGISTRY
