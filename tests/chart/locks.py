"""Lock files as pip-compile writes them: one `name==version` pin a block, with its hashes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})+)\s*$")


@dataclass(frozen=True, slots=True)
class Pin:
    version: Version
    hashes: tuple[str, ...]


def read_lock(path: Path) -> dict[str, Pin]:
    """The pins of a lock file by canonical name; every requirement must be `==` with hashes."""
    pins: dict[str, Pin] = {}
    logical = ""
    for line in [*path.read_text().splitlines(), ""]:
        stripped = line.split("#", 1)[0].strip()
        if stripped.endswith("\\"):
            logical += stripped[:-1].strip() + " "
            continue
        logical += stripped.strip()
        if logical:
            match = _PIN.match(logical)
            assert match, f"{path.name}: not a pin with hashes: {logical[:120]}"
            name = canonicalize_name(match[1])
            assert name not in pins, f"{path.name}: {name} is pinned twice"
            pins[name] = Pin(Version(match[2]), tuple(re.findall(r"[0-9a-f]{64}", match[3])))
        logical = ""
    return pins
