"""`check`, `test`, `config` and `rules`: the policy engine without a cluster."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from hotplug_guard.cases import case_files, load_case, run_case
from hotplug_guard.checking import CheckResult, check
from hotplug_guard.commands.helptext import FORMATTER, examples
from hotplug_guard.errors import UsageError
from hotplug_guard.files import default_config_text, load_policy_config
from hotplug_guard.inputs import load_context, load_review, with_kubevirt_version
from policy import CATALOGUE, Context
from webhook.patches import PatchSelfCheckError

EXIT_ALLOWED = 0
EXIT_DENIED = 1


def register(subparsers: Any) -> None:
    """Add the policy sub-commands to the top-level parser."""
    check_parser = subparsers.add_parser(
        "check",
        help="judge a VirtualMachine change offline (mutate, then validate)",
        description="Judge a VirtualMachine change like the webhook would: run the mutation, "
        "apply its patch, then validate the result. Exit 0 allowed, 1 denied, 2 bad input.",
        formatter_class=FORMATTER,
        epilog=examples(
            "hotplug-guard check --old examples/vm-running.yaml \\",
            "    --new examples/vm-plug-bridge.yaml --context examples/context.yaml",
            "hotplug-guard check --new examples/admission-review.json --output json",
            "hotplug-guard check --old examples/vm-running.yaml \\",
            "    --new examples/vm-plug-masquerade.yaml --kubevirt-version v1.9.0",
        ),
    )
    check_parser.add_argument(
        "--new",
        required=True,
        type=Path,
        metavar="NEW.yaml",
        help="the VirtualMachine as written (YAML or JSON), or an AdmissionReview of a "
        "VirtualMachine CREATE or UPDATE, which brings the old object, user, dryRun and "
        "operation itself",
    )
    check_parser.add_argument(
        "--old",
        type=Path,
        metavar="OLD.yaml",
        help="the VirtualMachine as stored before the change; omit for a CREATE",
    )
    check_parser.add_argument(
        "--context",
        type=Path,
        metavar="CTX.yaml",
        help="what the webhook would read from the cluster: vmi, networkAttachmentDefinitions "
        "('namespace/name'), kubevirt (the KubeVirt CR), migrations; omitted: unknown",
    )
    check_parser.add_argument(
        "--config",
        type=Path,
        metavar="CFG.yaml",
        help="policy config (only the keys it changes; `hotplug-guard config` prints the defaults)",
    )
    check_parser.add_argument(
        "--kubevirt-version",
        metavar="VERSION",
        help="the KubeVirt release the cluster runs (e.g. v1.7.2); overrides the context's "
        "KubeVirt CR status, which is where the webhook reads it",
    )
    check_parser.add_argument(
        "--user",
        default="",
        metavar="NAME",
        help="who makes the change, as kube-apiserver names them (exemptions apply)",
    )
    check_parser.add_argument(
        "--group",
        action="append",
        default=[],
        metavar="G",
        help="a group of the user (repeatable)",
    )
    check_parser.add_argument(
        "--dry-run", action="store_true", help="judge it as a server-side dry run"
    )
    check_parser.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="text (default), or json: allowed, causes, warnings, audit, patch, object",
    )
    check_parser.set_defaults(handler=run_check)

    test_parser = subparsers.add_parser(
        "test",
        help="run policy case files",
        description="Run policy case files (the format of the project's own suite) and print "
        "PASS or FAIL for each; exit 1 if any fails.",
        formatter_class=FORMATTER,
        epilog=examples(
            "hotplug-guard test examples/cases",
            "hotplug-guard test examples/cases/plug-e1000-denied.yaml",
        ),
    )
    test_parser.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="a case file, or a directory: every *.yaml below it, subdirectories included",
    )
    test_parser.set_defaults(handler=run_test)

    config_parser = subparsers.add_parser(
        "config",
        help="print the default policy config",
        description="Print the shipped policy config with a comment on every key: the "
        "starting point of a --config file (which only needs the keys it changes).",
        formatter_class=FORMATTER,
        epilog=examples("hotplug-guard config > policy.yaml"),
    )
    config_parser.set_defaults(handler=run_config)

    rules_parser = subparsers.add_parser(
        "rules",
        help="list the rules and their defaults",
        description="List every rule: its id (the key under `rules:` in the policy config), "
        "its default action and what it denies, and how that depends on the KubeVirt release.",
        formatter_class=FORMATTER,
        epilog=examples("hotplug-guard rules"),
    )
    rules_parser.set_defaults(handler=run_rules)


def run_check(args: argparse.Namespace) -> int:
    config = load_policy_config(args.config)
    review = load_review(
        args.new, args.old, username=args.user, groups=tuple(args.group), dry_run=args.dry_run
    )
    context = load_context(args.context) if args.context is not None else Context()
    if args.kubevirt_version is not None:
        context = with_kubevirt_version(context, args.kubevirt_version)
    try:
        result = check(review, context, config)
    except PatchSelfCheckError as error:
        raise UsageError(f"internal error, please report it: {error}") from None
    if args.output == "json":
        print(json.dumps(result.render(), indent=2))
    else:
        print(render_text(result))
    return EXIT_ALLOWED if result.allowed else EXIT_DENIED


def render_text(result: CheckResult) -> str:
    """The human-readable report of `check`."""
    lines = ["ALLOWED" if result.allowed else "DENIED"]
    lines += [f"  deny  {c.rule}: {c.field}: {c.message}" for c in result.causes]
    lines += [f"  warn  {w}" for w in result.warnings]
    lines += [f"  audit {c.rule}: {c.field}: {c.message}" for c in result.audit]
    if result.patch:
        lines.append("  patch:")
        lines += [f"    {json.dumps(op, sort_keys=True)}" for op in result.patch]
    return "\n".join(lines)


def run_test(args: argparse.Namespace) -> int:
    passed = failed = 0
    for path in case_files(args.paths):
        try:
            outcome = run_case(load_case(path))
        except UsageError as error:
            print(f"ERROR {path.stem}: {error}")
            failed += 1
            continue
        if outcome.passed:
            print(f"PASS  {outcome.name}")
            passed += 1
        else:
            print(f"FAIL  {outcome.name}")
            for failure in outcome.failures:
                print(f"      {failure}")
            failed += 1
    if passed + failed == 0:
        raise UsageError(f"{', '.join(map(str, args.paths))}: no case files (*.yaml) found")
    print(f"{passed} passed, {failed} failed")
    return EXIT_DENIED if failed else EXIT_ALLOWED


def run_config(_: argparse.Namespace) -> int:
    sys.stdout.write(default_config_text())
    return EXIT_ALLOWED


def run_rules(_: argparse.Namespace) -> int:
    width = max(len(info.id) for info in CATALOGUE)
    indent = " " * (width + 11)
    for info in CATALOGUE:
        print(f"{info.id:<{width}}  {info.default:<7}  {info.summary}")
        if info.releases:
            print(
                textwrap.fill(
                    f"by KubeVirt release: {info.releases}",
                    width=100,
                    initial_indent=indent,
                    subsequent_indent=indent,
                    break_on_hyphens=False,
                )
            )
    return EXIT_ALLOWED
