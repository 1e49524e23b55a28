"""The `hotplug-guard.io/` annotations: keys, JSON shapes, parse and render.

The webhook writes `request` and `hotplugged`; the companion controller writes
`status`. They live on the VM's own `metadata.annotations` (never on
`spec.template`), so they do not count as a template change for KubeVirt.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from json.encoder import encode_basestring_ascii as _quote
from typing import Final, final

from policy.values import Value
from policy.views import positive_int

PREFIX = "hotplug-guard.io/"
REQUEST = PREFIX + "request"
LEDGER = PREFIX + "hotplugged"
STATUS = PREFIX + "status"


class Phase(enum.StrEnum):
    """Progress of a request as the controller reports it."""

    WAITING = "Waiting"
    MIGRATING = "Migrating"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"


FINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.SKIPPED})


@final
class HotplugRequest(Value):
    """A plug/unplug the webhook admitted on a running VM.

    `generation` is the VM's `metadata.generation` once the change is stored;
    `signature` proves the webhook admitted it (`policy.signing`), empty when the
    request was made without the key (offline `check` and `test`).
    """

    FIELDS = ("id", "plug", "unplug", "generation", "signature")

    def __init__(
        self,
        *,
        id: str,
        plug: tuple[str, ...] = (),
        unplug: tuple[str, ...] = (),
        generation: int = 0,
        signature: str = "",
    ) -> None:
        self.id: Final = id
        self.plug: Final = plug
        self.unplug: Final = unplug
        self.generation: Final = generation
        self.signature: Final = signature


@final
class Ledger(Value):
    """Interfaces hot plugged during the VMI run `vmi` (reset on restart).

    `booted`: interfaces the VMI had when it booted, recorded by the first request
    of the run (None when not recorded). KubeVirt drops unplugged interfaces from
    the VMI spec, but their PCIe ports stay free for the whole run, so the count
    cannot be taken from the VMI later.
    """

    FIELDS = ("vmi", "interfaces", "booted")

    def __init__(
        self, *, vmi: str = "", interfaces: tuple[str, ...] = (), booted: int | None = None
    ) -> None:
        self.vmi: Final = vmi
        self.interfaces: Final = interfaces
        self.booted: Final = booted


@final
class HotplugStatus(Value):
    """The controller's report on request `id`.

    `generation` is the request's: the controller refuses a request whose generation
    is below the one it last reported on (an older request written back later);
    `since` is when it first reported on the request (RFC 3339, UTC), kept across
    phases.
    """

    FIELDS = ("id", "phase", "migration", "attempts", "message", "generation", "since")

    def __init__(
        self,
        *,
        id: str,
        phase: Phase,
        migration: str = "",
        attempts: int = 0,
        message: str = "",
        generation: int = 0,
        since: str = "",
    ) -> None:
        self.id: Final = id
        self.phase: Final = phase
        self.migration: Final = migration
        self.attempts: Final = attempts
        self.message: Final = message
        self.generation: Final = generation
        self.since: Final = since

    @property
    def finished(self) -> bool:
        """True once nothing more will happen for this request."""
        return self.phase in FINAL_PHASES


_SHA256: Final = hashlib.sha256()
"""Copied for each id: a copy skips looking the algorithm up and initialising it."""


def request_id(vm_uid: str, interfaces: Iterable[tuple[str, bool]]) -> str:
    """Stable 16-hex id of a VM's resulting interface set: (name, absent) pairs.

    Hashes the compact JSON `[uid, [[name, absent], ...]]` with the pairs sorted.
    """
    pairs = ",".join(
        f"[{_quote(name)},{'true' if absent else 'false'}]" for name, absent in sorted(interfaces)
    )
    canonical = f"[{_quote(vm_uid)},[{pairs}]]"
    digest = _SHA256.copy()
    digest.update(canonical.encode())
    return digest.hexdigest()[:16]


# The annotation values are compact JSON (as `json.dumps(..., separators=(",", ":"))`
# writes them), rendered directly: these run on every plug and a JSON encoder is
# set up anew on each call.


def render_request(request: HotplugRequest) -> str:
    signature = f',"signature":{_quote(request.signature)}' if request.signature else ""
    return (
        f'{{"id":{_quote(request.id)},"plug":{_list(request.plug)},'
        f'"unplug":{_list(request.unplug)},"generation":{request.generation}{signature}}}'
    )


def render_ledger(ledger: Ledger) -> str:
    booted = "" if ledger.booted is None else f',"booted":{ledger.booted}'
    return f'{{"vmi":{_quote(ledger.vmi)},"interfaces":{_list(ledger.interfaces)}{booted}}}'


def render_status(status: HotplugStatus) -> str:
    return (
        f'{{"id":{_quote(status.id)},"phase":{_quote(status.phase.value)},'
        f'"migration":{_quote(status.migration)},"attempts":{status.attempts},'
        f'"message":{_quote(status.message)},"generation":{status.generation},'
        f'"since":{_quote(status.since)}}}'
    )


def _list(names: Iterable[str]) -> str:
    return f"[{','.join(map(_quote, names))}]"


def parse_request(text: object) -> HotplugRequest | None:
    """The request in an annotation value, or None if absent or malformed."""
    data = _load(text)
    ident = data.get("id") if data is not None else None
    if data is None or not isinstance(ident, str):
        return None
    return HotplugRequest(
        id=ident,
        plug=_names(data.get("plug")),
        unplug=_names(data.get("unplug")),
        generation=positive_int(data.get("generation")),
        signature=_text(data.get("signature")),
    )


def parse_ledger(text: object) -> Ledger | None:
    """The ledger in an annotation value, or None if absent or malformed."""
    data = _load(text)
    if data is None:
        return None
    vmi = data.get("vmi")
    if not isinstance(vmi, str):
        return None
    booted = data.get("booted")
    return Ledger(
        vmi=vmi,
        interfaces=_names(data.get("interfaces")),
        booted=booted
        if isinstance(booted, int) and not isinstance(booted, bool) and booted >= 0
        else None,
    )


def parse_status(text: object) -> HotplugStatus | None:
    """The controller status in an annotation value, or None if absent or malformed."""
    data = _load(text)
    if data is None:
        return None
    ident = data.get("id")
    phase_text = data.get("phase")
    if not isinstance(ident, str) or not isinstance(phase_text, str):
        return None
    try:
        phase = Phase(phase_text)
    except ValueError:
        return None
    return HotplugStatus(
        id=ident,
        phase=phase,
        migration=_text(data.get("migration")),
        attempts=positive_int(data.get("attempts")),
        message=_text(data.get("message")),
        generation=positive_int(data.get("generation")),
        since=_text(data.get("since")),
    )


def _load(text: object) -> Mapping[str, object] | None:
    if not isinstance(text, str):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str))


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
