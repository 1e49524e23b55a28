"""Sub-commands of `hotplug-guard`; each module exposes `register(subparsers)`."""
