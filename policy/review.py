"""What the engine is asked: the request and the cluster context around it."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class Operation(enum.StrEnum):
    """Admission operations, spelled as in AdmissionReview."""

    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    CONNECT = "CONNECT"


class Mode(enum.StrEnum):
    """Which webhook asks: `mutate` may patch, `validate` only judges the final object."""

    MUTATE = "mutate"
    VALIDATE = "validate"


@dataclass(frozen=True, slots=True, kw_only=True)
class UserInfo:
    """The requesting user as kube-apiserver authenticated it."""

    username: str = ""
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Review:
    """One admission request for a `kubevirt.io/v1` VirtualMachine.

    `new` and `old` are the raw objects exactly as decoded from JSON (dicts); the
    engine never trusts their shape. `namespace` is the request namespace, used when the
    object itself does not carry one.
    """

    operation: Operation
    new: Mapping[str, Any] | None
    old: Mapping[str, Any] | None = None
    user: UserInfo = UserInfo()
    dry_run: bool = False
    namespace: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What the cluster knows about the VM right now.

    `vmi` is the running VirtualMachineInstance or None when unknown or absent;
    `nads` holds `namespace/name` of existing NetworkAttachmentDefinitions, or
    None when existence is unknown; `migrations` are the
    VirtualMachineInstanceMigrations of this VM's VMI (any phase).
    """

    vmi: Mapping[str, Any] | None = None
    nads: frozenset[str] | None = None
    kubevirt: Mapping[str, Any] | None = None
    migrations: tuple[Mapping[str, Any], ...] = ()


UNKNOWN_CONTEXT = Context()
