"""The README stays true: its rule table, config table and set-up commands."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from policy import CATALOGUE, PolicyConfig, render_config

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_rule_table_lists_every_rule_with_its_default() -> None:
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| (enforce|warn|audit|off) \|", README, re.M))
    assert rows == {info.id.value: info.default.value for info in CATALOGUE}


def test_config_table_names_every_key() -> None:
    keys = set(render_config(PolicyConfig()))
    documented = set(re.findall(r"^\| `([a-zA-Z]+)[.`]", README, re.M))
    assert keys <= documented


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"^```sh\n(.+?)\n```", README, re.M | re.S)
    setup = [c for c in commands if c.startswith("python3 -m venv")]
    assert len(setup) == 2, "the README keeps exactly two set-up commands"
    assert setup[1] in (ROOT / ".ci" / "run").read_text()


def test_the_case_file_example_is_the_one_in_examples() -> None:
    """Copied from the README or run from examples/, it works (`hotplug-guard test` runs it)."""
    shown = re.search(r"`(examples/cases/[a-z0-9-]+\.yaml)`:\n\n```yaml\n(.*?)```", README, re.S)
    assert shown is not None
    assert (ROOT / shown.group(1)).read_text() == shown.group(2)


def test_the_offline_commands_of_the_readme_work_as_shown() -> None:
    """Each `hotplug-guard check|test|config|rules` command, run from the top of the
    repository; a `check` followed by its output prints that verdict and those rules."""
    blocks = re.findall(r"^```(sh|)\n(.*?)^```", README, re.M | re.S)
    ran = 0
    for index, (kind, text) in enumerate(blocks):
        command = text.replace("\\\n", " ").strip()
        words = shlex.split(command) if kind == "sh" else []
        if words[:1] != ["hotplug-guard"] or words[1] not in ("check", "test", "config", "rules"):
            continue
        result = subprocess.run(
            [sys.executable, "-m", "hotplug_guard", *words[1:]],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode in (0, 1), f"{command}: {result.stderr}"
        ran += 1
        shown = blocks[index + 1][1] if index + 1 < len(blocks) else ""
        if words[1] == "check" and shown.startswith(("ALLOWED", "DENIED")):
            assert result.stdout.split("\n", 1)[0] == shown.split("\n", 1)[0], command
            for line in shown.splitlines()[1:]:
                if line.startswith(("  deny  ", "  warn  ")):
                    prefix = line.removesuffix("...").split(":", 2)
                    assert ":".join(prefix[:2]) in result.stdout, line
    assert ran >= 3
