"""The vocabulary of the rule registry: stable rule ids and the phases rules run in.

The ids are part of the product's interface (config files, metrics labels, case
files and denial messages name them), so they never change once released. Both
live apart from the registry (`policy/catalogue.py`) because the rule functions
the registry lists name them too.
"""

from __future__ import annotations

import enum


class RuleId(enum.StrEnum):
    """Stable rule identifiers, in evaluation order (the registry's order)."""

    KUBEVIRT_SPEC = "kubevirt-spec"
    GUARDED_ANNOTATIONS = "guarded-annotations"
    KUBEVIRT_RELEASE = "kubevirt-release"
    PLUG_BINDING = "plug-binding"
    PLUG_MODEL = "plug-model"
    PLUG_NETWORK = "plug-network"
    NAD_NAMESPACE = "nad-namespace"
    NAD_EXISTS = "nad-exists"
    MACHINE_TYPE = "machine-type"
    HOTPLUG_SLOTS = "hotplug-slots"
    PCI_SLOTS = "pci-slots"
    LIVE_MIGRATABLE = "live-migratable"
    UNPLUG_LEGACY_NAMING = "unplug-legacy-naming"
    UNPLUG_CANCEL = "unplug-cancel"
    PLAIN_REMOVAL = "plain-removal"
    RESTART_REQUIRED = "restart-required"
    IMPLICIT_POD_NETWORK = "implicit-pod-network"
    HOTPLUG_IN_PROGRESS = "hotplug-in-progress"


class RulePhase(enum.StrEnum):
    """When a rule runs, and so what its check is given.

    `SPEC` and `ANNOTATIONS` judge every CREATE and UPDATE, of any user; the others
    judge an UPDATE of a running VM by a user who is not exempt, and only when the
    kind of change they are named after occurs (their check gets a `Situation`).
    """

    SPEC = "spec"  # the network part of the new spec, after mutation (a `Submission`)
    ANNOTATIONS = "annotations"  # the hotplug-guard.io/ annotations (a `Guarded`)
    PLUG = "plug"  # an interface hot plugged
    UNPLUG = "unplug"  # an interface hot unplugged (set to absent)
    HOTPLUG = "hotplug"  # either of the two
    CANCEL = "cancel"  # an absent interface brought back
    REMOVAL = "removal"  # an interface or network deleted
    MODIFICATION = "modification"  # an existing interface or network changed
