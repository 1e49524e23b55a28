"""The offline CLI contract: exit codes, JSON output and errors that name file and line."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import jsonpatch
import pytest
import yaml

from hotplug_guard.cli import build_parser
from hotplug_guard.inputs import load_review
from policy import Operation, UserInfo

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CASES = ROOT / "tests" / "policy" / "cases"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotplug_guard", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def check(new: str, *extra: str | Path) -> subprocess.CompletedProcess[str]:
    return run("check", "--old", EXAMPLES / "vm-running.yaml", "--new", EXAMPLES / new, *extra)


def test_allowed_plug_exits_zero_and_json_carries_the_patched_object() -> None:
    result = check(
        "vm-plug-bridge.yaml", "--context", EXAMPLES / "context.yaml", "--output", "json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"allowed", "causes", "warnings", "audit", "patch", "object"}
    assert report["allowed"] is True
    assert report["causes"] == []
    new = yaml.safe_load((EXAMPLES / "vm-plug-bridge.yaml").read_text())
    assert jsonpatch.apply_patch(new, report["patch"]) == report["object"]
    request = json.loads(report["object"]["metadata"]["annotations"]["hotplug-guard.io/request"])
    assert request["plug"] == ["dyniface1"]


def test_denied_plug_exits_one_and_names_rule_field_and_fix() -> None:
    result = check("vm-plug-masquerade.yaml", "--output", "json")
    assert result.returncode == 1
    causes = json.loads(result.stdout)["causes"]
    binding = next(c for c in causes if c["rule"] == "plug-binding")
    assert binding["type"] == "FieldValueForbidden"
    assert binding["field"] == "spec.template.spec.domain.devices.interfaces[1]"
    assert "use 'bridge: {}'" in binding["message"]


def test_text_output_lists_denials() -> None:
    result = check("vm-plug-masquerade.yaml")
    assert result.returncode == 1
    assert result.stdout.startswith("DENIED")
    assert "deny  plug-binding:" in result.stdout


def test_without_old_the_request_is_a_create() -> None:
    result = run("check", "--new", EXAMPLES / "vm-plug-bridge.yaml", "--output", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["patch"] == []


def test_exempt_user_skips_hot_plug_rules() -> None:
    user = "system:serviceaccount:kubevirt:kubevirt-controller"
    result = check("vm-plug-masquerade.yaml", "--user", user, "--output", "json")
    rules = {c["rule"] for c in json.loads(result.stdout)["causes"]}
    assert rules == {"kubevirt-spec"}


def test_config_file_changes_rule_actions(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("rules:\n  plug-binding: warn\n  kubevirt-spec: audit\n")
    result = check("vm-plug-masquerade.yaml", "--config", config, "--output", "json")
    assert result.returncode == 0, result.stdout
    report = json.loads(result.stdout)
    assert any(w.startswith("plug-binding: ") for w in report["warnings"])
    assert [a["rule"] for a in report["audit"]] == ["kubevirt-spec"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("rules:\n  plug-binding: maybe\n", r"config.yaml:2: rules.plug-binding: must be one of"),
        ("rules:\n  no-such-rule: warn\n", r"config.yaml:2: rules.no-such-rule: unknown rule"),
        ("hotplugSlots: -1\n", r"config.yaml:1: hotplugSlots: must be at least 0"),
        ("rules: [\n", r"config.yaml:2: invalid YAML"),
        ("colour: blue\n", r"config.yaml:1: colour: unknown key"),
    ],
)
def test_bad_config_exits_two_naming_file_and_line(
    tmp_path: Path, content: str, expected: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(content)
    result = check("vm-plug-bridge.yaml", "--config", config)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert re.search(expected, result.stderr), result.stderr


def test_bad_object_files_exit_two(tmp_path: Path) -> None:
    missing = run("check", "--new", tmp_path / "nope.yaml")
    assert missing.returncode == 2
    assert "nope.yaml: no such file" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: [unclosed\n")
    result = run("check", "--new", broken)
    assert result.returncode == 2
    assert "broken.yaml:3: invalid YAML" in result.stderr
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    assert "must be a Kubernetes object" in run("check", "--new", scalar).stderr
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert "not UTF-8" in run("check", "--new", binary).stderr


def test_bad_context_names_the_entry(tmp_path: Path) -> None:
    context = tmp_path / "ctx.yaml"
    context.write_text("networkAttachmentDefinitions:\n- default/a\n- just-a-name\n")
    result = check("vm-plug-bridge.yaml", "--context", context)
    assert result.returncode == 2
    assert "ctx.yaml:3: networkAttachmentDefinitions.1: must be 'namespace/name'" in result.stderr


def test_test_command_runs_the_project_cases() -> None:
    result = run("test", CASES)
    assert result.returncode == 0, result.stdout[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    passed = int(summary.split()[0])
    assert passed == len(list(CASES.glob("*.yaml")))
    assert summary.endswith("passed, 0 failed")


def test_test_command_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    case = (CASES / "plug-model-e1000-denied.yaml").read_text()
    case = case.replace("../../fixtures", str(ROOT / "tests" / "fixtures"))
    (tmp_path / "good.yaml").write_text(case)
    (tmp_path / "wrong.yaml").write_text(case.replace("allowed: false", "allowed: true"))
    (tmp_path / "broken.yaml").write_text("expect: {allowed: true}\nnew: [1]\n")
    result = run("test", tmp_path)
    assert result.returncode == 1
    assert "PASS  good" in result.stdout
    assert "FAIL  wrong" in result.stdout
    assert "allowed: expected True, got False" in result.stdout
    assert "ERROR broken:" in result.stdout
    assert result.stdout.strip().endswith("1 passed, 2 failed")


def test_config_prints_the_shipped_defaults() -> None:
    from policy import PolicyConfig, parse_config

    result = run("config")
    assert result.returncode == 0
    assert parse_config(yaml.safe_load(result.stdout)) == PolicyConfig()


def test_rules_lists_every_rule() -> None:
    from policy import CATALOGUE

    result = run("rules")
    rows = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert [line.split()[0] for line in rows] == [i.id for i in CATALOGUE]


def test_rules_say_how_answers_depend_on_the_kubevirt_release() -> None:
    from policy import CATALOGUE

    text = " ".join(run("rules").stdout.split())
    dependent = [info for info in CATALOGUE if info.releases]
    assert {info.id for info in dependent} >= {
        "kubevirt-spec",
        "kubevirt-release",
        "machine-type",
        "hotplug-slots",
        "live-migratable",
        "restart-required",
    }
    for info in dependent:
        assert f"by KubeVirt release: {' '.join(info.releases.split())}" in text


def test_kubevirt_version_sets_the_release_without_a_kubevirt_cr(tmp_path: Path) -> None:
    old = tmp_path / "old.yaml"
    new = tmp_path / "new.yaml"
    vm = yaml.safe_load((EXAMPLES / "vm-running.yaml").read_text())
    old.write_text(yaml.safe_dump(vm))
    devices = vm["spec"]["template"]["spec"]["domain"]["devices"]
    devices["interfaces"].append({"name": "nic1", "bridge": {}})
    vm["spec"]["template"]["spec"]["networks"].append(
        {"name": "nic1", "multus": {"networkName": "new-fancy-net"}}
    )
    new.write_text(yaml.safe_dump(vm))
    unknown = run("check", "--old", old, "--new", new, "--output", "json")
    gated = run(
        "check", "--old", old, "--new", new, "--output", "json", "--kubevirt-version", "v1.2.2"
    )
    assert unknown.returncode == 0, unknown.stdout
    assert any(
        w.startswith("kubevirt-release: the KubeVirt release is unknown")
        for w in json.loads(unknown.stdout)["warnings"]
    )
    assert gated.returncode == 1, gated.stdout
    causes = json.loads(gated.stdout)["causes"]
    assert [c["rule"] for c in causes] == ["kubevirt-release"]
    assert (
        "KubeVirt v1.2.2 hot plugs interfaces only with the HotplugNICs feature gate"
        in (causes[0]["message"])
    )


def test_a_bad_kubevirt_version_exits_two() -> None:
    result = check("vm-plug-bridge.yaml", "--kubevirt-version", "latest")
    assert result.returncode == 2
    assert "not a KubeVirt version: 'latest'" in result.stderr


def test_a_bad_kubevirt_version_in_a_case_file_names_the_line(tmp_path: Path) -> None:
    case = (CASES / "plug-model-e1000-denied.yaml").read_text()
    case = case.replace("../../fixtures", str(ROOT / "tests" / "fixtures"))
    (tmp_path / "bad.yaml").write_text("kubevirtVersion: [1]\n" + case)
    result = run("test", tmp_path)
    assert result.returncode == 1
    assert "bad.yaml:1: kubevirtVersion: not a KubeVirt version: [1]" in result.stdout


# --- the AdmissionReview input of `check` -----------------------------------------------------


def review_file(tmp_path: Path, **request: object) -> Path:
    """examples/admission-review.json with `request` fields replaced."""
    document = json.loads((EXAMPLES / "admission-review.json").read_text())
    document["request"].update(request)
    path = tmp_path / "review.json"
    path.write_text(json.dumps(document))
    return path


def test_check_judges_an_admission_review_as_the_request_it_carries() -> None:
    """Old object, user and operation come from the review: alice's hot plug of a running VM."""
    result = run(
        "check", "--new", EXAMPLES / "admission-review.json", "--context", EXAMPLES / "context.yaml"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ALLOWED\n")
    assert '"plug\\":[\\"dyniface1\\"]' in result.stdout  # an UPDATE: the plug is recorded


def test_check_takes_the_user_from_the_admission_review(tmp_path: Path) -> None:
    """The same e1000 plug: denied for alice, skipped for KubeVirt's controller (exempt)."""
    document = json.loads((EXAMPLES / "admission-review.json").read_text())
    new = document["request"]["object"]
    new["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][-1]["model"] = "e1000"
    alice = run("check", "--new", review_file(tmp_path, object=new), "--output", "json")
    assert alice.returncode == 1
    assert [c["rule"] for c in json.loads(alice.stdout)["causes"]] == ["plug-model"]
    controller = {"username": "system:serviceaccount:kubevirt:kubevirt-controller"}
    skipped = run("check", "--new", review_file(tmp_path, object=new, userInfo=controller))
    assert skipped.returncode == 0, skipped.stdout


def test_an_admission_review_is_read_as_the_webhook_reads_its_request(tmp_path: Path) -> None:
    document = json.loads((EXAMPLES / "admission-review.json").read_text())
    request = document["request"]
    review = load_review(review_file(tmp_path, dryRun=True, namespace="vms"))
    assert review.operation is Operation.UPDATE
    assert (review.new, review.old) == (request["object"], request["oldObject"])
    assert review.user == UserInfo(username="alice", groups=("system:authenticated",))
    assert (review.dry_run, review.namespace) == (True, "vms")
    create = load_review(review_file(tmp_path, operation="CREATE", oldObject=None))
    assert (create.operation, create.old) == (Operation.CREATE, None)


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        (
            {
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
            },
            r"review.json:\d+: request.kind: a review of core Pod \(pods\): hotplug-guard judges "
            r"kubevirt.io VirtualMachines only",
        ),
        (
            {"subResource": "status"},
            r"a review of kubevirt.io VirtualMachine \(virtualmachines/status\)",
        ),
        (
            {"operation": "DELETE"},
            r"request.operation: DELETE: the webhook lets DELETE and CONNECT through untouched",
        ),
        (
            {"uid": "not-a-uuid"},
            r"review.json:1: the webhook would refuse this review: request.uid",
        ),
    ],
)
def test_check_refuses_an_admission_review_the_webhook_would_not_judge(
    tmp_path: Path, request_fields: dict[str, object], message: str
) -> None:
    result = run("check", "--new", review_file(tmp_path, **request_fields))
    assert result.returncode == 2
    assert result.stdout == ""
    assert re.search(message, result.stderr), result.stderr


def test_check_refuses_other_kinds_with_exit_two(tmp_path: Path) -> None:
    pod = tmp_path / "pod.yaml"
    pod.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: []}\n")
    for args in (("--new", pod), ("--old", pod, "--new", EXAMPLES / "vm-plug-bridge.yaml")):
        result = run("check", *args)
        assert result.returncode == 2
        assert (
            f"{pod}:2: kind: 'Pod' (apiVersion 'v1'): expected a kubevirt.io VirtualMachine or "
            "an AdmissionReview of one"
        ) in result.stderr
    vmi = run("check", "--new", EXAMPLES / "vmi-running.yaml")
    assert vmi.returncode == 2
    assert "'VirtualMachineInstance'" in vmi.stderr


def test_an_admission_review_brings_old_object_and_user_so_the_flags_are_refused() -> None:
    for extra in (("--old", EXAMPLES / "vm-running.yaml"), ("--user", "bob"), ("--dry-run",)):
        result = run("check", "--new", EXAMPLES / "admission-review.json", *extra)
        assert result.returncode == 2
        assert "leave out --old, --user, --group and --dry-run" in result.stderr


# --- `test` ---------------------------------------------------------------------------------------


def test_test_command_takes_case_files_and_directories(tmp_path: Path) -> None:
    nested = tmp_path / "deeper" / "still"
    nested.mkdir(parents=True)
    case = (EXAMPLES / "cases" / "plug-e1000-denied.yaml").read_text()
    (nested / "nested.yaml").write_text(case.replace("../", f"{EXAMPLES}/"))
    one = run("test", EXAMPLES / "cases" / "plug-e1000-denied.yaml")
    assert one.stdout.splitlines() == ["PASS  plug-e1000-denied", "1 passed, 0 failed"]
    both = run("test", EXAMPLES / "cases", tmp_path)  # directories: every *.yaml below them
    assert both.returncode == 0, both.stdout
    assert both.stdout.splitlines()[-1] == "3 passed, 0 failed"
    assert "PASS  nested" in both.stdout
    missing = run("test", tmp_path / "nope.yaml")
    assert missing.returncode == 2
    assert "nope.yaml: no such file or directory" in missing.stderr


# --- help, examples, version ------------------------------------------------------------------


def parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the command line: the top level, then each sub-command's, by its name."""
    pending = [("hotplug-guard", build_parser())]
    while pending:
        name, parser = pending.pop(0)
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending += [(f"{name} {sub}", child) for sub, child in action.choices.items()]


def example_commands(parser: argparse.ArgumentParser) -> list[list[str]]:
    """The `hotplug-guard ...` lines of a parser's examples, continuation lines joined."""
    assert parser.epilog is not None
    text = parser.epilog.replace("\\\n", " ")
    return [
        shlex.split(line, comments=True)[1:]
        for line in text.splitlines()
        if line.strip().startswith("hotplug-guard ")
    ]


def test_every_option_has_help_and_every_command_its_examples() -> None:
    for name, parser in parsers():
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{name} {'/'.join(action.option_strings) or action.dest}"
        assert parser.description, name
        assert example_commands(parser), f"{name}: no examples in its help"
        assert "examples:\n" in parser.format_help()


def test_every_example_in_the_help_is_accepted_and_the_offline_ones_work() -> None:
    """Run from the top of the repository, where the examples' files are."""
    for name, parser in parsers():
        for line in example_commands(parser):
            args = line[: line.index(">")] if ">" in line else line  # a shell redirection
            if "--help" in args:
                continue
            parsed = build_parser().parse_args(args)  # SystemExit here: not accepted
            if parsed.command in ("check", "test", "config", "rules"):
                result = run(*args)
                assert result.returncode in (0, 1), f"{name}: {args}: {result.stderr}"


def test_version_is_the_installed_package_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert result.stdout == f"hotplug-guard {project['version']}\n"
