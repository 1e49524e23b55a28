"""Config parsing: defaults, overrides and errors that name the key."""

from __future__ import annotations

import pytest
import yaml

from policy import Action, ConfigError, PolicyConfig, RuleId, parse_config, render_config
from policy.catalogue import CATALOGUE
from policy.config import PRODUCT_CONTROLLER, Completion, ContextUnavailable


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


def test_the_kubevirt_namespace_sits_among_the_other_exemptions_in_any_order() -> None:
    config = parse_config(
        {"exemptions": {"kubevirtNamespace": "virt", "usernames": ["bob"], "groups": ["ops"]}}
    )
    assert config.exemptions.usernames == {"bob"}
    assert config.exemptions.groups == {"ops"}
    assert config.exemptions.kubevirt_controller == "system:serviceaccount:virt:kubevirt-controller"


def test_a_null_kubevirt_namespace_exempts_no_kubevirt_controller() -> None:
    """`kubevirtNamespace:` left empty in YAML reads as null: no namespace, like ""."""
    config = parse_config({"exemptions": {"kubevirtNamespace": None}})
    assert config.exemptions.kubevirt_namespace == ""
    assert config.exemptions.kubevirt_controller == ""


RULE_IDS = ", ".join(info.id.value for info in CATALOGUE)
TOP_KEYS = (
    "allowSriovPlug, completion, contextUnavailable, controllerUsername, defaultModelVirtio, "
    "exemptions, hotplugSlots, onPlainRemoval, pciSlots, rootComplexSpareSlots, rules"
)


@pytest.mark.parametrize(
    ("data", "path", "error"),
    [
        ([], (), "<config>: must be a mapping, got list"),
        ({"nope": 1}, ("nope",), f"nope: unknown key; known keys: {TOP_KEYS}"),
        ({"rules": []}, ("rules",), "rules: must be a mapping of rule id to action, got list"),
        (
            {"rules": {"nope": "warn"}},
            ("rules", "nope"),
            f"rules.nope: unknown rule; known rules: {RULE_IDS}",
        ),
        (
            {"rules": {"plug-model": "block"}},
            ("rules", "plug-model"),
            "rules.plug-model: must be one of enforce, warn, audit, off, got 'block'",
        ),
        (
            {"rules": {"plug-model": True}},
            ("rules", "plug-model"),
            "rules.plug-model: must be one of enforce, warn, audit, off, got bool",
        ),
        (
            {"hotplugSlots": "4"},
            ("hotplugSlots",),
            "hotplugSlots: must be auto or an integer, got '4'",
        ),
        ({"hotplugSlots": 4.5}, ("hotplugSlots",), "hotplugSlots: must be an integer, got float"),
        ({"hotplugSlots": None}, ("hotplugSlots",), "hotplugSlots: must be an integer, got null"),
        ({"hotplugSlots": -1}, ("hotplugSlots",), "hotplugSlots: must be at least 0, got -1"),
        ({"pciSlots": 0}, ("pciSlots",), "pciSlots: must be at least 1, got 0"),
        (
            {"rootComplexSpareSlots": -1},
            ("rootComplexSpareSlots",),
            "rootComplexSpareSlots: must be at least 0, got -1",
        ),
        (
            {"allowSriovPlug": "yes"},
            ("allowSriovPlug",),
            "allowSriovPlug: must be true or false, got str",
        ),
        ({"exemptions": []}, ("exemptions",), "exemptions: must be a mapping, got list"),
        (
            {"exemptions": {"users": []}},
            ("exemptions", "users"),
            "exemptions.users: unknown key; known keys: groups, kubevirtNamespace, namespaces, "
            "usernames",
        ),
        (
            {"exemptions": {"groups": "admins"}},
            ("exemptions", "groups"),
            "exemptions.groups: must be a list of strings",
        ),
        (
            {"onPlainRemoval": "keep"},
            ("onPlainRemoval",),
            "onPlainRemoval: must be one of convert, deny, allow, got 'keep'",
        ),
        (
            {"contextUnavailable": "ignore"},
            ("contextUnavailable",),
            "contextUnavailable: must be one of warn, deny, got 'ignore'",
        ),
        (
            {"exemptions": {"kubevirtNamespace": 1}},
            ("exemptions", "kubevirtNamespace"),
            "exemptions.kubevirtNamespace: must be a string, got int",
        ),
        (
            {"controllerUsername": []},
            ("controllerUsername",),
            "controllerUsername: must be a string, got list",
        ),
    ],
)
def test_errors_name_the_key(data: object, path: tuple[str, ...], error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert caught.value.path == path
    assert str(caught.value) == error
    assert error.endswith(caught.value.message)


def test_the_smallest_values_are_accepted() -> None:
    config = parse_config({"hotplugSlots": 0, "rootComplexSpareSlots": 0, "pciSlots": 1})
    assert (config.hotplug_slots, config.root_complex_spare_slots, config.pci_slots) == (0, 0, 1)


def test_every_key_sets_its_knob() -> None:
    config = parse_config(
        {
            "completion": "in-place",
            "contextUnavailable": "deny",
            "allowSriovPlug": True,
            "defaultModelVirtio": True,
            "exemptions": {"groups": ["admins"], "namespaces": None},
        }
    )
    assert config.completion is Completion.IN_PLACE
    assert config.context_unavailable is ContextUnavailable.DENY
    assert config.allow_sriov_plug
    assert config.default_model_virtio
    assert config.exemptions.groups == {"admins"}
    assert config.exemptions.namespaces == frozenset()


def test_overrides_apply_on_top_of_the_config_they_override() -> None:
    config = parse_config({"hotplugSlots": 6}).with_overrides({"pciSlots": 40})
    assert (config.hotplug_slots, config.pci_slots) == (6, 40)
