"""RFC 6902 patches applied strictly, in place: the webhook's check of its own patches.

A patch that does not apply in kube-apiserver fails the request as an internal
error, even with failurePolicy Ignore, so the webhook applies each patch it is
about to send to the object it was made for. That check runs on every mutating
review, and `jsonpatch` (which the tests use) spends several times
the engine's own time building operation and pointer objects for it; this applier
walks the object directly. It is at least as strict as RFC 6902 and 6901 ask:

- a path is `""` or starts with `/`; `~` is followed by `0` or `1`;
- array indices are `0` or digits without a leading zero, within the array
  (`add` may also name the end, by its length or by `-`);
- `add` needs the parent to exist, `remove` and `replace` the target itself;
- `test` compares as JSON does: `true` is not `1`, `1` equals `1.0`;
- only `add`, `remove`, `replace` and `test` (the engine writes no others); a
  patch with any other operation is refused as not applying.

`tests/webhook/test_patches.py` holds it to `jsonpatch` on the engine's patches
and on patches that must fail. The offline `hotplug-guard check` and `test` check
the engine's patches with it too (`check_engine_patch`), so both say the same.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

_NUMBERS = (int, float)


class PatchError(Exception):
    """An operation of the patch does not apply to the document."""


class PatchSelfCheckError(Exception):
    """The engine produced a patch that does not apply to the object it was made for: a bug."""


def check_engine_patch(document: Any, operations: Iterable[Mapping[str, Any]]) -> Any:
    """`document` with the engine's patch applied (`apply_patch`), as kube-apiserver will
    apply it; `PatchSelfCheckError` when it does not apply. The one self-check of the
    webhook and of the offline `check`.
    """
    try:
        return apply_patch(document, operations)
    except PatchError as error:
        raise PatchSelfCheckError(f"the engine's patch does not apply: {error}") from error


def apply_patch(document: Any, operations: Iterable[Mapping[str, Any]]) -> Any:
    """`document` with `operations` applied in order, changed in place where it can be
    (a patch of the root returns the new root); `PatchError` at the first that does not apply.
    """
    for operation in operations:
        document = _apply(document, operation)
    return document


def _apply(document: Any, operation: Mapping[str, Any]) -> Any:
    op = operation.get("op")
    path = operation.get("path")
    if not isinstance(path, str):
        raise PatchError(f"operation {op!r} has no string path")
    if op not in ("add", "remove", "replace", "test"):
        raise PatchError(f"unsupported operation {op!r} at {path!r}")
    if op != "remove" and "value" not in operation:
        raise PatchError(f"{op} at {path!r} has no value")
    value = operation.get("value")
    if not path:
        if op == "test":
            if not json_equal(document, value):
                raise PatchError("test of the whole document failed")
            return document
        if op == "remove":
            raise PatchError("remove of the whole document")
        return value
    parent, part = _parent(document, path)
    if isinstance(parent, dict):
        if op == "add":
            parent[part] = value
        elif part not in parent:
            raise PatchError(f"{op} at {path!r}: no member {part!r}")
        elif op == "remove":
            del parent[part]
        elif op == "replace":
            parent[part] = value
        elif not json_equal(parent[part], value):
            raise PatchError(f"test at {path!r} failed")
        return document
    if isinstance(parent, list):
        if op == "add":
            index = len(parent) if part == "-" else _index(part, path)
            if index > len(parent):
                raise PatchError(f"add at {path!r}: index beyond the end of the array")
            parent.insert(index, value)
            return document
        index = _index(part, path)
        if index >= len(parent):
            raise PatchError(f"{op} at {path!r}: index out of range")
        if op == "remove":
            del parent[index]
        elif op == "replace":
            parent[index] = value
        elif not json_equal(parent[index], value):
            raise PatchError(f"test at {path!r} failed")
        return document
    raise PatchError(f"{op} at {path!r}: the parent is not an object or an array")


def _parent(document: Any, path: str) -> tuple[Any, str]:
    """The container the last part of `path` is in, and that part (unescaped)."""
    if path[0] != "/":
        raise PatchError(f"path {path!r} does not start with '/'")
    parts = path[1:].split("/")
    node = document
    for raw in parts[:-1]:
        part = _unescape(raw, path)
        if isinstance(node, dict):
            if part not in node:
                raise PatchError(f"path {path!r}: no member {part!r}")
            node = node[part]
        elif isinstance(node, list):
            index = _index(part, path)
            if index >= len(node):
                raise PatchError(f"path {path!r}: index {part} out of range")
            node = node[index]
        else:
            raise PatchError(f"path {path!r} goes through a value that is not a container")
    return node, _unescape(parts[-1], path)


def _unescape(part: str, path: str) -> str:
    if "~" not in part:
        return part
    unescaped = _unescaped(part)
    if unescaped is None:
        raise PatchError(f"path {path!r} has an invalid escape")
    return unescaped


@functools.lru_cache(maxsize=64)
def _unescaped(part: str) -> str | None:
    """`part` with its RFC 6901 escapes undone, None if one is invalid; remembered: the
    same few annotation keys on nearly every review (docs/webhook.md, "Performance")."""
    if any(escaped[:1] not in ("0", "1") for escaped in part.split("~")[1:]):
        return None
    return part.replace("~1", "/").replace("~0", "~")


def _index(part: str, path: str) -> int:
    if not part.isascii() or not part.isdigit() or (part[0] == "0" and len(part) > 1):
        raise PatchError(f"path {path!r}: {part!r} is not an array index")
    return int(part)


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: `true` is not `1`, `1` equals `1.0`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, _NUMBERS) and isinstance(b, _NUMBERS):
        return a == b
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(json_equal(item, b[key]) for key, item in a.items())
        )
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    return type(a) is type(b) and a == b
