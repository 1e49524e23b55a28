"""Certificate files in a local directory, written so that a reader never sees half a file.

Write order, which a server reloading these files relies on:

1. `ca.crt` (and `ca.key`) — the bundle grows before anything is signed by a new CA;
2. `tls.key`;
3. `tls.crt` — written last, so its change is the signal to reload: when the
   server sees a new `tls.crt`, the matching `tls.key` is already in place.

Each file is replaced atomically (temporary file in the same directory, fsync,
rename). Between steps 2 and 3 the key is new and the certificate old; a server
that finds the pair mismatched keeps its current certificate and retries later.
Files whose content is unchanged are not rewritten, so an up-to-date directory
triggers no reload.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from certs.issuance import DEFAULT_KEYS, KeySpec
from certs.material import (
    CA_CERT,
    CA_KEY,
    TLS_CERT,
    TLS_KEY,
    Material,
    parse_material,
    render_material,
)
from certs.names import parse_hosts
from certs.renewal import renew
from certs.rotation import DEFAULT_POLICY, RotationPolicy

KEY_MODE = 0o600
CERTIFICATE_MODE = 0o644
DIRECTORY_MODE = 0o700
WRITE_ORDER = (CA_CERT, CA_KEY, TLS_KEY, TLS_CERT)
LOCK_FILE = ".lock"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingFiles:
    """Paths of the CA bundle, serving certificate and serving key a TLS server loads."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def in_directory(cls, directory: Path) -> ServingFiles:
        """The standard file names inside `directory`."""
        return cls(ca=directory / CA_CERT, cert=directory / TLS_CERT, key=directory / TLS_KEY)


def ensure_local(
    directory: Path,
    *,
    hosts: Sequence[str] = ("localhost", "127.0.0.1"),
    now: datetime | None = None,
) -> ServingFiles:
    """Create (or renew when due) a local CA and serving certificate for `hosts`; return the paths.

    The CA and its key stay in `directory`, so later calls reuse them; concurrent
    callers are serialised by a lock file.
    """
    with _locked(directory):
        renewal = renew(
            read_material(directory),
            hosts=parse_hosts(hosts),
            now=now or datetime.now(UTC),
            policy=DEFAULT_POLICY,
            key_spec=DEFAULT_KEYS,
        )
        write_material(directory, renewal.material, with_authority_key=True)
    return ServingFiles.in_directory(directory)


def generate_local(
    directory: Path,
    *,
    hosts: Sequence[str],
    key_spec: KeySpec = DEFAULT_KEYS,
    policy: RotationPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> ServingFiles:
    """Write a brand-new CA and serving certificate for `hosts` to `directory`, replacing any.

    Files are replaced in the documented order, so a server reading the directory
    can be handed a complete rotation (new CA and certificate) while it runs.
    """
    with _locked(directory):
        renewal = renew(
            Material(),
            hosts=parse_hosts(hosts),
            now=now or datetime.now(UTC),
            policy=policy,
            key_spec=key_spec,
        )
        return write_material(directory, renewal.material, with_authority_key=True)


def read_material(directory: Path) -> Material:
    """The material found in `directory`; missing files count as absent."""
    entries: dict[str, bytes] = {}
    for name in WRITE_ORDER:
        with contextlib.suppress(FileNotFoundError):
            entries[name] = (directory / name).read_bytes()
    return parse_material(entries)


def write_material(
    directory: Path, material: Material, *, with_authority_key: bool
) -> ServingFiles:
    """Write the files of `material` that changed, in the documented order."""
    make_private_directory(directory)
    entries = render_material(material, with_authority_key=with_authority_key)
    for name in WRITE_ORDER:
        if name in entries:
            mode = KEY_MODE if name in {CA_KEY, TLS_KEY} else CERTIFICATE_MODE
            write_atomic(directory / name, entries[name], mode=mode)
    return ServingFiles.in_directory(directory)


def write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Replace `path` with `data` in one rename; skip the write when the content is the same."""
    with contextlib.suppress(FileNotFoundError):
        if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
            return
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        # mkstemp creates the file 0600, so a key is never readable by others, not even briefly
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _sync_directory(path.parent)


def make_private_directory(directory: Path) -> None:
    """Create `directory` readable by its owner only; an existing directory is left as it is."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        directory.mkdir(mode=DIRECTORY_MODE)
    except FileExistsError:
        return
    directory.chmod(DIRECTORY_MODE)  # mkdir's mode is filtered by the umask


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on `directory` so two processes never interleave their writes."""
    make_private_directory(directory)
    descriptor = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, KEY_MODE)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def _sync_directory(directory: Path) -> None:
    """Persist a rename, so that a crash does not bring back the old file."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
