"""The policy ConfigMap is a config the engine reads, and the values override it as documented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from hotplug_guard.files import load_policy_config
from policy import CATALOGUE, Action, ConfigError, PolicyConfig, parse_config, render_config
from policy.config import Completion, ContextUnavailable, OnPlainRemoval
from tests.chart.manifests import FULLNAME, NAMESPACE, Release, chart, render


def policy_text(release: Release) -> str:
    text: str = release.one("ConfigMap", f"{FULLNAME}-policy")["data"]["policy.yaml"]
    return text


def served_config(release: Release, directory: Path) -> PolicyConfig:
    """The config as `serve --config` loads it from the mounted ConfigMap."""
    path = directory / "policy.yaml"
    path.write_text(policy_text(release))
    return load_policy_config(path)


# what the chart adds to the policy value: the install's own identities
INSTALL = {
    "exemptions": {"kubevirtNamespace": "kubevirt"},
    "controllerUsername": f"system:serviceaccount:{NAMESPACE}:{FULLNAME}-controller",
}
DERIVED_KEYS = {"controllerUsername"}
DERIVED_EXEMPTION_KEYS = {"kubevirtNamespace"}


def installed(overrides: dict[str, Any] | None = None) -> PolicyConfig:
    """The engine defaults with `overrides` and what the chart adds for the install."""
    return PolicyConfig().with_overrides(overrides or {}).with_overrides(INSTALL)


def test_default_config_map_holds_the_engine_defaults_bound_to_the_install(
    default_release: Release, tmp_path: Path
) -> None:
    assert served_config(default_release, tmp_path) == installed()
    assert yaml.safe_load(policy_text(default_release)) == render_config(installed())


def test_the_kubevirt_namespace_and_the_controller_follow_the_install(tmp_path: Path) -> None:
    release = render({"kubevirt": {"namespace": "openshift-cnv"}}, namespace="guards")
    config = served_config(release, tmp_path)
    assert config.exemptions.kubevirt_namespace == "openshift-cnv"
    assert config.exemptions.kubevirt_controller == (
        "system:serviceaccount:openshift-cnv:kubevirt-controller"
    )
    assert config.controller_username == f"system:serviceaccount:guards:{FULLNAME}-controller"


def test_the_install_bound_keys_cannot_be_set_in_the_policy_value() -> None:
    for policy in ({"controllerUsername": "mallory"}, {"exemptions": {"kubevirtNamespace": "x"}}):
        with pytest.raises(helm_python.HelmValuesError):
            chart().validate_schema({"policy": policy})


def test_a_rule_override_in_values_reaches_the_engine(tmp_path: Path) -> None:
    release = render({"policy": {"rules": {"plug-model": "warn"}}})
    config = served_config(release, tmp_path)
    assert config.rules["plug-model"] is Action.WARN
    assert {k: v for k, v in config.rules.items() if k != "plug-model"} == {
        k: v for k, v in PolicyConfig().rules.items() if k != "plug-model"
    }


def test_an_unquoted_off_in_a_values_file_switches_the_rule_off(tmp_path: Path) -> None:
    """YAML 1.1 reads `off` as false in Helm's values parser; the engine takes it as off."""
    values = helm_python.values_from_yaml("policy:\n  rules:\n    plug-model: off\n")
    assert values == {"policy": {"rules": {"plug-model": False}}}
    config = served_config(render(values), tmp_path)
    assert config.rules["plug-model"] is Action.OFF


def test_an_exemption_list_in_values_replaces_the_default_list(tmp_path: Path) -> None:
    release = render({"policy": {"exemptions": {"usernames": ["ops@example.com"]}}})
    config = served_config(release, tmp_path)
    assert config.exemptions.usernames == frozenset({"ops@example.com"})
    assert config.exemptions.groups == frozenset()


def test_scalar_overrides_reach_the_engine(tmp_path: Path) -> None:
    overrides = {
        "hotplugSlots": 8,
        "onPlainRemoval": "deny",
        "completion": "in-place",
        "allowSriovPlug": True,
        "contextUnavailable": "deny",
    }
    config = served_config(render({"policy": overrides}), tmp_path)
    assert config == installed(overrides)
    assert config != installed()


def engine_defaults_without_install_keys() -> dict[str, Any]:
    rendered = render_config(PolicyConfig())
    for key in DERIVED_KEYS:
        del rendered[key]
    for key in DERIVED_EXEMPTION_KEYS:
        del rendered["exemptions"][key]
    return rendered


def test_chart_values_ship_exactly_the_engine_defaults() -> None:
    """values.yaml shows every knob with its real default, so `helm show values` tells the truth."""
    shipped = chart().values["policy"]
    assert parse_config(shipped) == PolicyConfig()
    assert shipped == engine_defaults_without_install_keys()


# --- the schema knows the engine's keys and values -----------------------------------------


def policy_schema() -> dict[str, Any]:
    schema = chart().schema
    assert schema is not None
    policy: dict[str, Any] = schema["properties"]["policy"]
    return policy


def test_schema_lists_every_config_key_and_rule_of_the_engine() -> None:
    schema = policy_schema()
    assert set(schema["properties"]) == set(engine_defaults_without_install_keys())
    assert set(schema["properties"]["rules"]["properties"]) == {info.id.value for info in CATALOGUE}
    assert set(schema["properties"]["exemptions"]["properties"]) == {
        "usernames",
        "groups",
        "namespaces",
    }


def test_schema_enums_are_the_engine_enums() -> None:
    properties = policy_schema()["properties"]
    for rule in properties["rules"]["properties"].values():
        assert rule["enum"] == [*(action.value for action in Action), False]
    for key, kind in (
        ("onPlainRemoval", OnPlainRemoval),
        ("completion", Completion),
        ("contextUnavailable", ContextUnavailable),
    ):
        assert properties[key]["enum"] == [member.value for member in kind]


@pytest.mark.parametrize(
    "overrides",
    [
        {"hotplugSlots": 0},
        {"hotplugSlots": -1},
        {"hotplugSlots": "auto"},
        {"hotplugSlots": "many"},
        {"rules": {"kubevirt-release": "warn"}},
        {"rootComplexSpareSlots": 0},
        {"rootComplexSpareSlots": -1},
        {"pciSlots": 1},
        {"pciSlots": 0},
        {"pciSlots": 2.5},
        {"allowSriovPlug": "yes"},
        {"exemptions": {"groups": None}},
        {"exemptions": {"groups": [1]}},
        {"rules": {"plug-model": "audit"}},
    ],
)
def test_schema_and_engine_agree_on_what_is_valid(overrides: dict[str, Any]) -> None:
    try:
        parse_config(overrides)
        engine_accepts = True
    except ConfigError:
        engine_accepts = False
    try:
        chart().validate_schema({"policy": overrides})
        schema_accepts = True
    except helm_python.HelmValuesError:
        schema_accepts = False
    assert schema_accepts == engine_accepts
