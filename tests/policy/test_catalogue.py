"""The rule registry is the one source: every other list of rules follows it.

The shipped config, the chart's values and schema and the README's rule table are
written by hand (they carry comments and prose a record has no place for), so
these tests hold each to the registry's ids, defaults and order.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from hotplug_guard.files import default_config_text
from policy import PolicyConfig, RuleId
from policy.catalogue import ANNOTATION_RULES, CATALOGUE, HOTPLUG_RULES, ORDER, SPEC_RULES
from policy.ids import RulePhase
from policy.transitions import TRIGGERS

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "hotplug-guard"
REGISTRY = [(rule.id.value, rule.default.value) for rule in CATALOGUE]


def test_every_rule_id_has_exactly_one_record_in_id_order() -> None:
    assert [rule.id for rule in CATALOGUE] == list(RuleId)
    assert {rule_id: index for index, (rule_id, _) in enumerate(REGISTRY)} == ORDER


def test_each_record_runs_in_the_phase_its_check_is_written_for() -> None:
    assert {rule.phase for rule in SPEC_RULES} == {RulePhase.SPEC}
    assert {rule.phase for rule in ANNOTATION_RULES} == {RulePhase.ANNOTATIONS}
    assert {rule.phase for rule in HOTPLUG_RULES} <= set(TRIGGERS)
    assert set(TRIGGERS) == set(RulePhase) - {RulePhase.SPEC, RulePhase.ANNOTATIONS}


def test_every_record_says_what_its_rule_does() -> None:
    for rule in CATALOGUE:
        assert rule.summary, rule.id
        assert rule.summary == rule.summary.strip(), rule.id


def test_the_config_defaults_are_the_registry_defaults() -> None:
    assert list(PolicyConfig().rules.items()) == [
        (rule.id.value, rule.default) for rule in CATALOGUE
    ]


def test_the_shipped_config_lists_every_rule_in_registry_order() -> None:
    rules = yaml.safe_load(default_config_text())["rules"]
    assert list(rules.items()) == REGISTRY


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
