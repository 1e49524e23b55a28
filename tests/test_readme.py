"""The README stays true: its rule table, config table and set-up commands."""

from __future__ import annotations

import re
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
