"""The keys that sign hot plug requests, as files: a mounted Secret, or made locally.

A directory holds `key` (signs, and verifies) and optionally `accepted` (more
keys that verify, one per line: the previous key after a rotation, or the next
one before it). A key is text of at least 32 bytes; surrounding whitespace is
not part of it. The chart mounts the Secret `<release>-signing` this way; an
offline `serve` makes a key of its own in its state directory.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from certs.directory import KEY_MODE, make_private_directory, write_atomic
from hotplug_guard.errors import UsageError
from policy.signing import InvalidKey, SigningKeys

KEY_FILE = "key"
ACCEPTED_FILE = "accepted"


def read_keys(directory: Path) -> SigningKeys:
    """The keys in `directory`; UsageError naming the file when they are missing or unusable."""
    signing = _read(directory / KEY_FILE).strip()
    accepted_path = directory / ACCEPTED_FILE
    accepted = _read(accepted_path).split() if accepted_path.exists() else []
    try:
        return SigningKeys(signing=signing, accepted=tuple(accepted))
    except InvalidKey as error:
        raise UsageError(f"{directory}: {error}") from None


def ensure_local_keys(directory: Path) -> SigningKeys:
    """The keys in `directory`, with a new random signing key written (0600) if there is none."""
    make_private_directory(directory)
    if not (directory / KEY_FILE).exists():
        write_atomic(directory / KEY_FILE, secrets.token_urlsafe(48).encode(), mode=KEY_MODE)
    return read_keys(directory)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file; it must hold the request signing key") from None
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror}") from None
