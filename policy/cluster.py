"""What the KubeVirt CR says: the release the cluster runs and the knobs the rules read.

KubeVirt's answers to several hot plug questions changed between releases (slot
formulas, the HotplugNICs gate, when RestartRequired is set, which bindings its
webhook accepts). The operator reports the release it deployed in the CR's
`status.observedKubeVirtVersion`; every release-dependent rule asks `Release`
instead of assuming one.
"""

from __future__ import annotations

import re
from typing import Any, Final, final

from policy.values import Value
from policy.views import mapping, text

VERSION = re.compile(r"v?([0-9]{1,6})\.([0-9]{1,6})(?:\.([0-9]{1,6}))?")
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
    match = VERSION.match(value.strip())
    if match is None:
        return None
    return (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))


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
    """The KubeVirt CR as the rules read it; every field has KubeVirt's default when unset."""

    def __init__(self, raw: dict[str, Any] | None) -> None:
        cr = mapping(raw)
        self.known = raw is not None
        spec = mapping(cr.get("spec"))
        configuration = mapping(spec.get("configuration"))
        network = mapping(configuration.get("network"))
        developer = mapping(configuration.get("developerConfiguration"))
        workloads = mapping(spec.get("workloadUpdateStrategy"))
        version = parse_version(mapping(cr.get("status")).get("observedKubeVirtVersion"))
        self.release = Release(version=version) if version is not None else UNKNOWN_RELEASE
        self.feature_gates = _strings(developer.get("featureGates"))
        self.default_interface = (
            text(network.get("defaultNetworkInterface")) or DEFAULT_NETWORK_INTERFACE
        )
        self.permit_bridge_on_pod_network = (
            network.get("permitBridgeInterfaceOnPodNetwork") is not False
        )
        self.workload_update_methods = _strings(workloads.get("workloadUpdateMethods"))


def parse_cluster(kubevirt: object) -> Cluster:
    """View of the KubeVirt CR (None when unknown; any shape is tolerated)."""
    return Cluster(kubevirt if isinstance(kubevirt, dict) else None)


def _strings(value: object) -> frozenset[str]:
    if not isinstance(value, list):
        return frozenset()
    return frozenset([item for item in value if isinstance(item, str)])
