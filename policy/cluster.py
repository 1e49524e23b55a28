"""What the KubeVirt CR says: the release the cluster runs and the knobs the rules read.

KubeVirt's answers to several hot plug questions changed between releases (slot
formulas, the HotplugNICs gate, when RestartRequired is set, which bindings its
webhook accepts). The operator reports the release it deployed in the CR's
`status.observedKubeVirtVersion`; every release-dependent rule asks `Release`
instead of assuming one.
"""

from __future__ import annotations

from typing import Any, Final, final

from policy.values import Value
from policy.views import mapping, text

MAX_DIGITS = 6
DEFAULT_NETWORK_INTERFACE = "bridge"  # KubeVirt's virt-config default
HOTPLUG_NICS_GATE = "HotplugNICs"
NAD_SWAP_GATE = "LiveUpdateNADRef"
EVICT = "Evict"


def parse_version(value: object) -> tuple[int, int, int] | None:
    """`(major, minor, patch)` of a KubeVirt version such as `v1.7.2` or `v1.8.0-rc.1`.

    Pre-release and build suffixes are ignored: a release candidate already
    behaves like the release it precedes. None when the text is not a version.
    """
    if not isinstance(value, str):
        return None
    parts = value.strip().removeprefix("v").split(".", 2)
    if len(parts) < 2 or not (parts[0].isascii() and parts[0].isdigit()):
        return None
    minor = _leading_number(parts[1])
    patch = _leading_number(parts[2]) if len(parts) == 3 else 0
    if minor is None or patch is None or len(parts[0]) > MAX_DIGITS:
        return None
    return (int(parts[0]), minor, patch)


def _leading_number(text: str) -> int | None:
    """The number `text` starts with (`0` of `0-rc.1`); None when it starts otherwise."""
    end = 0
    while end < len(text) and end < MAX_DIGITS and "0" <= text[end] <= "9":
        end += 1
    if end == 0 or (end < len(text) and "0" <= text[end] <= "9"):
        return None
    return int(text[:end])


@final
class Release(Value):
    """The KubeVirt release whose rules apply; `version` None means unknown.

    `exact` is False when only a lower bound is known (the VMI carries an
    annotation that first appeared in a given release).
    """

    FIELDS = ("version", "exact")

    def __init__(self, *, version: tuple[int, int, int] | None, exact: bool = True) -> None:
        self.version: Final = version
        self.exact: Final = exact

    @property
    def known(self) -> bool:
        return self.version is not None

    def at_least(self, minor: int, patch: int = 0) -> bool:
        """Known to be v1.minor.patch or later."""
        return self.version is not None and self.version >= (1, minor, patch)

    def before(self, minor: int, patch: int = 0) -> bool:
        """Known to be older than v1.minor.patch (a lower bound never is)."""
        return self.version is not None and self.exact and self.version < (1, minor, patch)

    @property
    def name(self) -> str:
        """How messages name it: `KubeVirt v1.7.2`, `KubeVirt v1.6.4 or later`."""
        if self.version is None:
            return "an unknown KubeVirt release"
        major, minor, patch = self.version
        return f"KubeVirt v{major}.{minor}.{patch}{'' if self.exact else ' or later'}"


UNKNOWN_RELEASE = Release(version=None)


class Cluster:
    """The KubeVirt CR as the rules read it; every field has KubeVirt's default when unset.

    Everything is read on first use: many requests need none of it.
    """

    def __init__(self, raw: dict[str, Any] | None) -> None:
        self.known = raw is not None
        self._cr = mapping(raw)
        self._release: Release | None = None

    @property
    def release(self) -> Release:
        """The release in `status.observedKubeVirtVersion`."""
        if self._release is None:
            status = mapping(self._cr.get("status"))
            version = parse_version(status.get("observedKubeVirtVersion"))
            self._release = UNKNOWN_RELEASE if version is None else Release(version=version)
        return self._release

    def _configuration(self, key: str) -> dict[str, Any]:
        return mapping(mapping(mapping(self._cr.get("spec")).get("configuration")).get(key))

    @property
    def feature_gates(self) -> frozenset[str]:
        return _strings(self._configuration("developerConfiguration").get("featureGates"))

    @property
    def default_interface(self) -> str:
        """The binding of the pod interface KubeVirt adds by itself."""
        network = self._configuration("network")
        return text(network.get("defaultNetworkInterface")) or DEFAULT_NETWORK_INTERFACE

    @property
    def permit_bridge_on_pod_network(self) -> bool:
        return self._configuration("network").get("permitBridgeInterfaceOnPodNetwork") is not False

    @property
    def workload_update_methods(self) -> frozenset[str]:
        strategy = mapping(mapping(self._cr.get("spec")).get("workloadUpdateStrategy"))
        return _strings(strategy.get("workloadUpdateMethods"))


def parse_cluster(kubevirt: object) -> Cluster:
    """View of the KubeVirt CR (None when unknown; any shape is tolerated)."""
    return Cluster(kubevirt if isinstance(kubevirt, dict) else None)


def _strings(value: object) -> frozenset[str]:
    if not isinstance(value, list):
        return frozenset()
    return frozenset([item for item in value if isinstance(item, str)])
