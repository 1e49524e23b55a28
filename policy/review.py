"""What the engine is asked: the request and the cluster context around it.

Values like the engine's own (`policy.values.Value`): the webhook builds them for
every request in compiled code, where a dataclass's generated `__init__` runs
interpreted (docs/architecture.md, "Why the engine's values are written by hand").
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final, final

from policy.values import Value


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


@final
class UserInfo(Value):
    """The requesting user as kube-apiserver authenticated it."""

    FIELDS = ("username", "groups")

    def __init__(self, *, username: str = "", groups: tuple[str, ...] = ()) -> None:
        self.username: Final = username
        self.groups: Final = groups


NO_USER: Final = UserInfo()


@final
class Review(Value):
    """One admission request for a `kubevirt.io/v1` VirtualMachine.

    `new` and `old` are the raw objects exactly as decoded from JSON (dicts); the
    engine never trusts their shape. `namespace` is the request namespace, used when the
    object itself does not carry one.
    """

    FIELDS = ("operation", "new", "old", "user", "dry_run", "namespace")

    def __init__(
        self,
        *,
        operation: Operation,
        new: Mapping[str, Any] | None,
        old: Mapping[str, Any] | None = None,
        user: UserInfo = NO_USER,
        dry_run: bool = False,
        namespace: str = "",
    ) -> None:
        self.operation: Final = operation
        self.new: Final = new
        self.old: Final = old
        self.user: Final = user
        self.dry_run: Final = dry_run
        self.namespace: Final = namespace


@final
class Context(Value):
    """What the cluster knows about the VM right now.

    `vmi` is the running VirtualMachineInstance or None when unknown or absent;
    `nads` holds `namespace/name` of existing NetworkAttachmentDefinitions, or
    None when existence is unknown; `migrations` are the
    VirtualMachineInstanceMigrations of this VM's VMI (any phase).
    """

    FIELDS = ("vmi", "nads", "kubevirt", "migrations")

    def __init__(
        self,
        *,
        vmi: Mapping[str, Any] | None = None,
        nads: frozenset[str] | None = None,
        kubevirt: Mapping[str, Any] | None = None,
        migrations: tuple[Mapping[str, Any], ...] = (),
    ) -> None:
        self.vmi: Final = vmi
        self.nads: Final = nads
        self.kubevirt: Final = kubevirt
        self.migrations: Final = migrations


UNKNOWN_CONTEXT = Context()
