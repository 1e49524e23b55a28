"""The companion controller: finishes each admitted hot plug / unplug with one live migration.

`decisions.decide` is pure: given the VM's verified request, its status, the VMI,
the VMI's migrations, the KubeVirt CR and the time, it says what to do next.
`cluster` is the one module that talks to the API server; `runner` wires the
caches, the work queue, the leader election and the decisions together.
"""
