"""OpenShift's `restricted-v2` SecurityContextConstraints and the checks its admission makes.

OpenShift admits a pod only if one SCC its service account may use accepts it;
for a service account granted nothing, that is `restricted-v2` (OpenShift 4.11
and later). `RESTRICTED_V2` holds that SCC's fields (security.openshift.io/v1);
`violations` applies them to a pod spec as the SCC admission plugin validates
it: user IDs and fsGroup from the namespace's ranges (its `openshift.io/sa.scc.*`
annotations), capabilities, privilege, host namespaces and ports, volume types,
seccomp and SELinux. What the plugin only defaults (a UID, an fsGroup, a seccomp
profile, the dropped capabilities) is not a violation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from tests.chart.manifests import containers

RESTRICTED_V2: dict[str, Any] = yaml.safe_load(
    """
    apiVersion: security.openshift.io/v1
    kind: SecurityContextConstraints
    metadata:
      name: restricted-v2
    allowHostDirVolumePlugin: false
    allowHostIPC: false
    allowHostNetwork: false
    allowHostPID: false
    allowHostPorts: false
    allowPrivilegeEscalation: false
    allowPrivilegedContainer: false
    allowedCapabilities: [NET_BIND_SERVICE]
    defaultAddCapabilities: null
    fsGroup: {type: MustRunAs}
    readOnlyRootFilesystem: false
    requiredDropCapabilities: [ALL]
    runAsUser: {type: MustRunAsRange}
    seLinuxContext: {type: MustRunAs}
    seccompProfiles: [runtime/default]
    supplementalGroups: {type: RunAsAny}
    volumes: [configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim,
              projected, secret]
    """
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectRanges:
    """What OpenShift annotates each namespace (project) with, read by the SCC strategies."""

    uids: range = range(1000680000, 1000690000)  # openshift.io/sa.scc.uid-range 1000680000/10000
    groups: range = range(1000680000, 1000690000)  # openshift.io/sa.scc.supplemental-groups
    selinux_level: str = "s0:c26,c15"  # openshift.io/sa.scc.mcs


IDENTITIES = ("runAsUser", "runAsGroup", "fsGroup")


def fixed_identities(pod: Mapping[str, Any]) -> set[str]:
    """Which of the user, group and fsGroup IDs the pod fixes, for itself or a container.

    Under restricted-v2 any fixed one is refused in some namespace (each has its own range),
    so a chart for OpenShift leaves all three to the SCC.
    """
    return {
        key
        for context in (pod, *containers(pod))
        for key in IDENTITIES
        if key in (context.get("securityContext") or {})
    }


def violations(
    pod: Mapping[str, Any],
    scc: Mapping[str, Any] = RESTRICTED_V2,
    project: ProjectRanges = ProjectRanges(),  # frozen, so sharing it is safe
) -> list[str]:
    """Why the SCC refuses `pod` in a namespace with `project`'s ranges (empty: admitted)."""
    return sorted(set(_violations(pod, scc, project)))


def _violations(
    pod: Mapping[str, Any], scc: Mapping[str, Any], project: ProjectRanges
) -> Iterator[str]:
    for field, allowed in (
        ("hostNetwork", "allowHostNetwork"),
        ("hostPID", "allowHostPID"),
        ("hostIPC", "allowHostIPC"),
    ):
        if pod.get(field) and not scc[allowed]:
            yield f"{field}: not allowed"
    for volume in pod.get("volumes") or ():
        kind = next(key for key in volume if key != "name")
        if kind not in scc["volumes"]:
            yield f"volume {volume['name']}: {kind} volumes are not allowed"
    yield from _context_violations("pod", pod.get("securityContext") or {}, scc, project)
    fs_group = (pod.get("securityContext") or {}).get("fsGroup")
    if (
        fs_group is not None
        and scc["fsGroup"]["type"] == "MustRunAs"
        and fs_group not in project.groups
    ):
        yield f"fsGroup {fs_group}: not in the namespace's range {_shown(project.groups)}"
    for container in containers(pod):
        name = f"container {container['name']}"
        context = container.get("securityContext") or {}
        yield from _context_violations(name, context, scc, project)
        if context.get("privileged") and not scc["allowPrivilegedContainer"]:
            yield f"{name}: privileged containers are not allowed"
        if context.get("allowPrivilegeEscalation") and not scc["allowPrivilegeEscalation"]:
            yield f"{name}: allowPrivilegeEscalation: true is not allowed"
        added = set((context.get("capabilities") or {}).get("add") or ())
        if not added <= set(scc["allowedCapabilities"] or ()):
            yield f"{name}: capabilities {sorted(added)} are not allowed"
        for port in container.get("ports") or ():
            if port.get("hostPort") and not scc["allowHostPorts"]:
                yield f"{name}: hostPort {port['hostPort']} is not allowed"


def _context_violations(
    where: str, context: Mapping[str, Any], scc: Mapping[str, Any], project: ProjectRanges
) -> Iterator[str]:
    """Checks shared by the pod's and each container's securityContext."""
    user = context.get("runAsUser")
    ranged = scc["runAsUser"]["type"] == "MustRunAsRange"
    if user is not None and ranged and user not in project.uids:
        yield f"{where}: runAsUser {user} is not in the namespace's range {_shown(project.uids)}"
    selinux = context.get("seLinuxOptions") or {}
    if selinux.get("level") not in (None, project.selinux_level):
        yield f"{where}: seLinuxOptions.level {selinux['level']} is not the namespace's"
    seccomp = (context.get("seccompProfile") or {}).get("type")
    if seccomp is not None and _seccomp_name(context["seccompProfile"]) not in (
        scc["seccompProfiles"] or ()
    ):
        yield f"{where}: seccomp profile {seccomp} is not allowed"


def _seccomp_name(profile: Mapping[str, Any]) -> str:
    """A seccompProfile field as the SCC's `seccompProfiles` list names it."""
    if profile["type"] == "RuntimeDefault":
        return "runtime/default"
    if profile["type"] == "Localhost":
        return f"localhost/{profile.get('localhostProfile', '')}"
    return "unconfined"


def _shown(ids: range) -> str:
    return f"{ids.start}/{len(ids)}"
