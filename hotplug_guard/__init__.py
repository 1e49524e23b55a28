"""The `hotplug-guard` command: the composition root that wires policy, webhook and certs."""

from importlib import metadata

try:
    __version__ = metadata.version("hotplug-guard")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "unknown (not installed)"
