"""Config parsing: defaults, overrides and errors that name the key."""

from __future__ import annotations

import pytest
import yaml

from policy import Action, ConfigError, PolicyConfig, RuleId, parse_config, render_config
from policy.config import PRODUCT_CONTROLLER


def test_shipped_file_equals_the_built_in_defaults() -> None:
    from hotplug_guard.files import default_config_text

    assert parse_config(yaml.safe_load(default_config_text())) == PolicyConfig()


def test_render_round_trips() -> None:
    config = parse_config({"rules": {"plug-model": "audit"}, "hotplugSlots": 8})
    assert parse_config(render_config(config)) == config


def test_hotplug_slots_default_to_auto_and_take_a_number_as_site_policy() -> None:
    assert PolicyConfig().hotplug_slots is None
    assert render_config(PolicyConfig())["hotplugSlots"] == "auto"
    assert parse_config({"hotplugSlots": 6}).hotplug_slots == 6
    assert parse_config({"hotplugSlots": 6}).with_overrides({"hotplugSlots": "auto"}) == (
        PolicyConfig()
    )


def test_unquoted_yaml_off_switches_a_rule_off() -> None:
    config = parse_config(yaml.safe_load("rules:\n  restart-required: off\n"))
    assert config.action(RuleId.RESTART_REQUIRED) is Action.OFF


def test_overrides_keep_other_defaults() -> None:
    config = PolicyConfig().with_overrides({"rules": {"plug-model": "warn"}})
    assert config.action(RuleId.PLUG_MODEL) is Action.WARN
    assert config.action(RuleId.PLUG_BINDING) is Action.ENFORCE
    assert config.exemptions.kubevirt_controller == (
        "system:serviceaccount:kubevirt:kubevirt-controller"
    )
    assert config.controller_username == PRODUCT_CONTROLLER


def test_only_the_configured_kubevirt_namespace_is_exempt() -> None:
    config = parse_config({"exemptions": {"kubevirtNamespace": "openshift-cnv"}})
    cover = config.exemptions.cover
    assert cover(
        username="system:serviceaccount:openshift-cnv:kubevirt-controller", groups=(), namespace=""
    )
    assert not cover(
        username="system:serviceaccount:kubevirt:kubevirt-controller", groups=(), namespace=""
    )
    assert not parse_config({"exemptions": {"kubevirtNamespace": ""}}).exemptions.cover(
        username="", groups=(), namespace=""
    )


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ([], (), "must be a mapping"),
        ({"rules": {"nope": "warn"}}, ("rules", "nope"), "unknown rule"),
        ({"rules": {"plug-model": "block"}}, ("rules", "plug-model"), "must be one of"),
        ({"rules": {"plug-model": True}}, ("rules", "plug-model"), "got bool"),
        ({"hotplugSlots": "4"}, ("hotplugSlots",), "must be auto or an integer, got '4'"),
        ({"hotplugSlots": 4.5}, ("hotplugSlots",), "must be an integer"),
        ({"pciSlots": 0}, ("pciSlots",), "at least 1"),
        ({"allowSriovPlug": "yes"}, ("allowSriovPlug",), "true or false"),
        ({"exemptions": {"users": []}}, ("exemptions", "users"), "unknown key"),
        ({"exemptions": {"groups": "admins"}}, ("exemptions", "groups"), "list of strings"),
        ({"exemptions": {"kubevirtNamespace": 1}}, ("exemptions", "kubevirtNamespace"), "string"),
        ({"controllerUsername": []}, ("controllerUsername",), "must be a string"),
        ({"onPlainRemoval": "keep"}, ("onPlainRemoval",), "convert, deny, allow"),
    ],
)
def test_errors_name_the_key(data: object, path: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert caught.value.path == path
    assert message in caught.value.message
