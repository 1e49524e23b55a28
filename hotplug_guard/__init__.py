"""The `hotplug-guard` command: the composition root that wires policy, webhook and certs."""
