"""Policy case files: one YAML file per behaviour, run by `hotplug-guard test` and pytest.

A case gives `old` (omit for CREATE), `new` or `change` (RFC 6902 ops applied to
`old`), optional `user`, `dryRun`, `context`, `kubevirtVersion` (the release the
context's KubeVirt CR reports, e.g. `v1.7.2`) and `config`, and `expect`:
`allowed`, `causes` (rule, field, type, message regex; checked exactly, in
order), `warnings` (regexes, checked exactly when given), `audit` (rule, message
regex), `patch` (exact, when given) and `annotations` (JSON-subset of each
`hotplug-guard.io/` annotation on the resulting object; null = absent). There is no
`mode`: every case runs both phases, mutating then validating, as kube-apiserver does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotplug_guard.checking import CheckResult, check
from hotplug_guard.errors import UsageError
from hotplug_guard.inputs import Source, build_review, with_kubevirt_version
from policy import Cause, ConfigError, Context, PolicyConfig, Review, parse_config
from webhook.patches import PatchSelfCheckError

CASE_KEYS = frozenset(
    {
        "description",
        "old",
        "new",
        "change",
        "user",
        "dryRun",
        "context",
        "kubevirtVersion",
        "config",
        "expect",
    }
)
EXPECT_KEYS = frozenset({"allowed", "causes", "warnings", "audit", "patch", "annotations"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """A loaded case file: the request, its surroundings and what must come out."""

    name: str
    description: str
    review: Review
    context: Context
    config: PolicyConfig
    expect: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """The result of running one case: empty `failures` means it passed."""

    name: str
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


def case_files(paths: Sequence[Path]) -> list[Path]:
    """The case files named, and those in each named directory and below it (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.yaml") if p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"{path}: no such file or directory")
    return list(dict.fromkeys(found))


def load_case(path: Path) -> Case:
    """Read and check one case file; UsageError names the file and line of a problem."""
    source = Source(path)
    data = source.data
    if not isinstance(data, Mapping):
        raise source.error((), "a case file must be a mapping")
    for key in data:
        if key not in CASE_KEYS:
            raise source.error((key,), f"unknown key; known keys: {', '.join(sorted(CASE_KEYS))}")
    if "expect" not in data or not isinstance(data["expect"], Mapping):
        raise source.error(("expect",), "required: a mapping with at least 'allowed'")
    expect = data["expect"]
    for key in expect:
        if key not in EXPECT_KEYS:
            raise source.error(
                ("expect", key), f"unknown key; known: {', '.join(sorted(EXPECT_KEYS))}"
            )
    if not isinstance(expect.get("allowed"), bool):
        raise source.error(("expect", "allowed"), "required: true or false")
    old = source.object(data["old"], ("old",)) if data.get("old") is not None else None
    if ("new" in data) == ("change" in data):
        raise source.error((), "give exactly one of 'new' or 'change'")
    if "change" in data:
        if old is None:
            raise source.error(("change",), "'change' needs 'old' to apply to")
        new = source.changed(old, data["change"], ("change",))
    else:
        new = source.object(data["new"], ("new",))
    user = data.get("user") or {}
    if not isinstance(user, Mapping):
        raise source.error(("user",), "must be a mapping with username and groups")
    username = user.get("username", "")
    groups = user.get("groups") or []
    if not isinstance(username, str) or not isinstance(groups, list):
        raise source.error(("user",), "username must be a string and groups a list")
    try:
        config = parse_config(data.get("config"))
    except ConfigError as error:
        raise source.error(("config", *error.path), error.message) from None
    context = source.context(data.get("context"), ("context",))
    if "kubevirtVersion" in data:
        try:
            context = with_kubevirt_version(context, data["kubevirtVersion"])
        except UsageError as error:
            raise source.error(("kubevirtVersion",), str(error)) from None
    return Case(
        name=path.stem,
        description=str(data.get("description", "")),
        review=build_review(
            new=new,
            old=old,
            username=username,
            groups=tuple(str(g) for g in groups),
            dry_run=data.get("dryRun") is True,
        ),
        context=context,
        config=config,
        expect=expect,
    )


def run_case(case: Case) -> Outcome:
    """Run the case through `check` and compare with its expectations."""
    try:
        result = check(case.review, case.context, case.config)
    except PatchSelfCheckError as error:
        return Outcome(name=case.name, failures=(str(error),))
    return Outcome(name=case.name, failures=tuple(compare(case.expect, result)))


def compare(expect: Mapping[str, Any], result: CheckResult) -> list[str]:
    """Every difference between the expectations and the result, as readable lines."""
    failures: list[str] = []
    if result.allowed != expect["allowed"]:
        failures.append(f"allowed: expected {expect['allowed']}, got {result.allowed}")
    failures += _compare_causes("causes", expect.get("causes") or [], result.causes)
    failures += _compare_causes("audit", expect.get("audit") or [], result.audit)
    if "warnings" in expect:
        failures += _compare_texts("warnings", expect["warnings"] or [], result.warnings)
    if "patch" in expect and expect["patch"] != result.patch:
        failures.append(
            f"patch: expected {json.dumps(expect['patch'])}, got {json.dumps(result.patch)}"
        )
    for key, wanted in (expect.get("annotations") or {}).items():
        failures += _compare_annotation(key, wanted, result.object)
    return failures


def _compare_causes(label: str, expected: Sequence[Any], actual: Sequence[Cause]) -> list[str]:
    got = [f"{c.rule} {c.field}: {c.message}" for c in actual]
    if len(expected) != len(actual):
        return [f"{label}: expected {len(expected)}, got {len(actual)}: {got}"]
    failures = []
    for index, (item, cause) in enumerate(zip(expected, actual, strict=True)):
        want = item if isinstance(item, Mapping) else {}
        problems = [
            f"{key} {want[key]!r} != {getattr(cause, key)!r}"
            for key in ("rule", "field", "type")
            if key in want and want[key] != str(getattr(cause, key))
        ]
        if "message" in want and not re.search(str(want["message"]), cause.message):
            problems.append(f"message /{want['message']}/ does not match {cause.message!r}")
        if problems:
            failures.append(f"{label}[{index}]: " + "; ".join(problems))
    return failures


def _compare_texts(label: str, expected: Sequence[Any], actual: Sequence[str]) -> list[str]:
    if len(expected) != len(actual):
        return [f"{label}: expected {len(expected)}, got {len(actual)}: {list(actual)}"]
    return [
        f"{label}[{index}]: /{want}/ does not match {text!r}"
        for index, (want, text) in enumerate(zip(expected, actual, strict=True))
        if not re.search(str(want), text)
    ]


def _compare_annotation(key: str, wanted: Any, obj: Any) -> list[str]:
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    value = annotations.get(key) if isinstance(annotations, Mapping) else None
    if wanted is None:
        return [] if value is None else [f"annotation {key}: expected absent, got {value!r}"]
    if value is None:
        return [f"annotation {key}: expected {json.dumps(wanted)}, but it is absent"]
    try:
        actual = json.loads(value) if isinstance(wanted, Mapping) else value
    except ValueError:
        return [f"annotation {key}: not JSON: {value!r}"]
    if not _subset(wanted, actual):
        return [f"annotation {key}: expected {json.dumps(wanted)} within {value}"]
    return []


def _subset(wanted: Any, actual: Any) -> bool:
    if isinstance(wanted, Mapping):
        return isinstance(actual, Mapping) and all(
            k in actual and _subset(v, actual[k]) for k, v in wanted.items()
        )
    return bool(wanted == actual)
