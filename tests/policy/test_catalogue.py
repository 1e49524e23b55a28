"""The rule registry is the one source: every other list of rules follows it.

The shipped config is written by hand (it carries comments a record has no place
for), so a test holds it to the registry's ids, defaults and order; the chart's and
the README's lists are held to it in tests/test_rule_lists.py.
"""

from __future__ import annotations

import yaml

from hotplug_guard.files import default_config_text
from policy import PolicyConfig, RuleId
from policy.catalogue import (
    ANNOTATION_RULES,
    CATALOGUE,
    HOTPLUG_RULES,
    ORDER,
    SPEC_RULES,
    Rule,
)
from policy.ids import RulePhase
from policy.transitions import TRIGGERS

REGISTRY = [(rule.id.value, rule.default.value) for rule in CATALOGUE]


def test_every_rule_id_has_exactly_one_record_in_id_order() -> None:
    assert [rule.id for rule in CATALOGUE] == list(RuleId)
    assert {rule_id: index for index, (rule_id, _) in enumerate(REGISTRY)} == ORDER


def test_each_record_runs_in_the_phase_its_check_is_written_for() -> None:
    assert {rule.phase for rule in SPEC_RULES} == {RulePhase.SPEC}
    assert {rule.phase for rule in ANNOTATION_RULES} == {RulePhase.ANNOTATIONS}
    assert {rule.phase for rule in HOTPLUG_RULES} <= set(TRIGGERS)
    assert set(TRIGGERS) == set(RulePhase) - {RulePhase.SPEC, RulePhase.ANNOTATIONS}


def test_a_record_keeps_what_it_is_given_and_has_no_release_notes_unless_given() -> None:
    for rule in CATALOGUE:
        copied = Rule(
            id=rule.id,
            default=rule.default,
            summary=rule.summary,
            phase=rule.phase,
            check=rule.check,
            **({"releases": rule.releases} if rule.releases else {}),
        )
        assert copied == rule  # equality compares every field in FIELDS


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
