"""Policy configuration: rule actions, exemptions and the hot plug knobs.

`parse_config` turns a plain mapping (from YAML or a ConfigMap) into a frozen
`PolicyConfig`; every problem is reported with the key path that caused it so
the CLI can point at the file line.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from policy.ids import RuleId
from policy.verdicts import Action

KUBEVIRT_NAMESPACE = "kubevirt"
"""Where upstream installs KubeVirt; OpenShift Virtualization uses `openshift-cnv`."""
KUBEVIRT_CONTROLLER_ACCOUNT = "kubevirt-controller"
PRODUCT_CONTROLLER = "system:serviceaccount:hotplug-guard:hotplug-guard-controller"
AUTO = "auto"


def service_account(namespace: str, name: str) -> str:
    """The username kube-apiserver gives service account `namespace/name`."""
    return f"system:serviceaccount:{namespace}:{name}"


_E = TypeVar("_E", bound=enum.StrEnum)


class OnPlainRemoval(enum.StrEnum):
    """What to do with an interface deleted from a running VM's spec."""

    CONVERT = "convert"
    DENY = "deny"
    ALLOW = "allow"


class Completion(enum.StrEnum):
    """How a hot plug reaches the guest in this cluster."""

    MIGRATION = "migration"
    IN_PLACE = "in-place"


class ContextUnavailable(enum.StrEnum):
    """What the webhook does when its cluster caches are not synced."""

    WARN = "warn"
    DENY = "deny"


class ConfigError(ValueError):
    """A configuration value is wrong; `path` names the key, e.g. ('rules', 'plug-model')."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        self.path = path
        self.message = message
        where = ".".join(str(p) for p in path) or "<config>"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Exemptions:
    """Requests from these users, groups or namespaces skip the hot plug rules.

    KubeVirt's controller is named by its namespace, a value of the install (the
    webhook checks that KubeVirt runs there), not by a fixed list of namespaces
    that anyone allowed to create one could claim. Exempt requests still meet the
    annotation guard and `kubevirt-spec`.
    """

    kubevirt_namespace: str = KUBEVIRT_NAMESPACE
    usernames: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    namespaces: frozenset[str] = frozenset()

    @property
    def kubevirt_controller(self) -> str:
        """KubeVirt's controller service account, or "" when no namespace is set."""
        if not self.kubevirt_namespace:
            return ""
        return service_account(self.kubevirt_namespace, KUBEVIRT_CONTROLLER_ACCOUNT)

    def cover(self, *, username: str, groups: Iterable[str], namespace: str) -> bool:
        """True when a request by this user in this namespace is exempt."""
        return (
            username in self.usernames
            or (bool(username) and username == self.kubevirt_controller)
            or namespace in self.namespaces
            or not self.groups.isdisjoint(groups)
        )


def _default_actions() -> Mapping[str, Action]:
    # Imported here: the registry lists the rule functions, which read a PolicyConfig.
    from policy.catalogue import CATALOGUE  # noqa: PLC0415

    return {rule.id.value: rule.default for rule in CATALOGUE}


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyConfig:
    """Everything a platform team can tune; the defaults are the shipped policy."""

    rules: Mapping[str, Action] = field(default_factory=_default_actions)
    exemptions: Exemptions = Exemptions()
    controller_username: str = PRODUCT_CONTROLLER
    hotplug_slots: int | None = None  # None: "auto", the ports KubeVirt reserved
    root_complex_spare_slots: int = 1
    pci_slots: int = 32
    on_plain_removal: OnPlainRemoval = OnPlainRemoval.CONVERT
    completion: Completion = Completion.MIGRATION
    allow_sriov_plug: bool = False
    default_model_virtio: bool = False
    context_unavailable: ContextUnavailable = ContextUnavailable.WARN

    def action(self, rule: RuleId) -> Action:
        """The configured action of `rule`."""
        return self.rules[rule]

    def with_overrides(self, overrides: Mapping[str, Any]) -> PolicyConfig:
        """This config with the keys in `overrides` replaced (same syntax as the file)."""
        return parse_config(overrides, base=self)


_KEYS = {
    "rules",
    "exemptions",
    "controllerUsername",
    "hotplugSlots",
    "rootComplexSpareSlots",
    "pciSlots",
    "onPlainRemoval",
    "completion",
    "allowSriovPlug",
    "defaultModelVirtio",
    "contextUnavailable",
}


def parse_config(data: object, *, base: PolicyConfig | None = None) -> PolicyConfig:
    """Build a config from a mapping; keys not given keep the value of `base`.

    Raises `ConfigError` naming the offending key for unknown keys, unknown rule
    ids, unknown actions and values of the wrong type or range.
    """
    config = base or PolicyConfig()
    if data is None:
        return config
    if not isinstance(data, Mapping):
        raise ConfigError((), f"must be a mapping, got {_kind(data)}")
    for key in data:
        if key not in _KEYS:
            raise ConfigError((str(key),), f"unknown key; known keys: {', '.join(sorted(_KEYS))}")
    changes: dict[str, Any] = {}
    if "rules" in data:
        changes["rules"] = _parse_rules(data["rules"], config.rules)
    if "exemptions" in data:
        changes["exemptions"] = _parse_exemptions(data["exemptions"], config.exemptions)
    if "controllerUsername" in data:
        changes["controller_username"] = _parse_string(
            data["controllerUsername"], ("controllerUsername",)
        )
    if "hotplugSlots" in data:
        changes["hotplug_slots"] = _parse_slots(data["hotplugSlots"])
    for key, attr, minimum in (
        ("rootComplexSpareSlots", "root_complex_spare_slots", 0),
        ("pciSlots", "pci_slots", 1),
    ):
        if key in data:
            changes[attr] = _parse_int(data[key], (key,), minimum=minimum)
    for key, attr, kind in (
        ("onPlainRemoval", "on_plain_removal", OnPlainRemoval),
        ("completion", "completion", Completion),
        ("contextUnavailable", "context_unavailable", ContextUnavailable),
    ):
        if key in data:
            changes[attr] = _parse_enum(data[key], (key,), kind)
    for key, attr in (
        ("allowSriovPlug", "allow_sriov_plug"),
        ("defaultModelVirtio", "default_model_virtio"),
    ):
        if key in data:
            value = data[key]
            if not isinstance(value, bool):
                raise ConfigError((key,), f"must be true or false, got {_kind(value)}")
            changes[attr] = value
    return replace(config, **changes)


def render_config(config: PolicyConfig) -> dict[str, Any]:
    """The config as the mapping `parse_config` reads (round-trips)."""
    return {
        "rules": {rule: action.value for rule, action in config.rules.items()},
        "exemptions": {
            "kubevirtNamespace": config.exemptions.kubevirt_namespace,
            "usernames": sorted(config.exemptions.usernames),
            "groups": sorted(config.exemptions.groups),
            "namespaces": sorted(config.exemptions.namespaces),
        },
        "controllerUsername": config.controller_username,
        "hotplugSlots": AUTO if config.hotplug_slots is None else config.hotplug_slots,
        "rootComplexSpareSlots": config.root_complex_spare_slots,
        "pciSlots": config.pci_slots,
        "onPlainRemoval": config.on_plain_removal.value,
        "completion": config.completion.value,
        "allowSriovPlug": config.allow_sriov_plug,
        "defaultModelVirtio": config.default_model_virtio,
        "contextUnavailable": config.context_unavailable.value,
    }


def _parse_rules(data: object, current: Mapping[str, Action]) -> Mapping[str, Action]:
    if not isinstance(data, Mapping):
        raise ConfigError(("rules",), f"must be a mapping of rule id to action, got {_kind(data)}")
    rules = dict(current)
    for rule, action in data.items():
        if rule not in rules:
            known = ", ".join(RuleId)
            raise ConfigError(("rules", str(rule)), f"unknown rule; known rules: {known}")
        # YAML 1.1 reads an unquoted `off` as false; take it as meant.
        rules[rule] = (
            Action.OFF if action is False else _parse_enum(action, ("rules", rule), Action)
        )
    return rules


def _parse_exemptions(data: object, current: Exemptions) -> Exemptions:
    if not isinstance(data, Mapping):
        raise ConfigError(("exemptions",), f"must be a mapping, got {_kind(data)}")
    changes: dict[str, Any] = {}
    for key in data:
        if key not in ("kubevirtNamespace", "usernames", "groups", "namespaces"):
            raise ConfigError(
                ("exemptions", str(key)),
                "unknown key; known keys: groups, kubevirtNamespace, namespaces, usernames",
            )
        if key == "kubevirtNamespace":
            changes["kubevirt_namespace"] = _parse_string(data[key], ("exemptions", key))
            continue
        values = data[key]
        if values is None:
            values = []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ConfigError(("exemptions", key), "must be a list of strings")
        changes[key] = frozenset(values)
    return replace(current, **changes)


def _parse_slots(value: object) -> int | None:
    if value == AUTO:
        return None
    if isinstance(value, str):
        raise ConfigError(("hotplugSlots",), f"must be auto or an integer, got {value!r}")
    return _parse_int(value, ("hotplugSlots",), minimum=0)


def _parse_string(value: object, path: tuple[str, ...]) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(path, f"must be a string, got {_kind(value)}")
    return value


def _parse_int(value: object, path: tuple[str, ...], *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, f"must be an integer, got {_kind(value)}")
    if value < minimum:
        raise ConfigError(path, f"must be at least {minimum}, got {value}")
    return value


def _parse_enum(value: object, path: tuple[str, ...], kind: type[_E]) -> _E:
    allowed = ", ".join(member.value for member in kind)
    if not isinstance(value, str):
        raise ConfigError(path, f"must be one of {allowed}, got {_kind(value)}")
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(path, f"must be one of {allowed}, got {value!r}") from None


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__
