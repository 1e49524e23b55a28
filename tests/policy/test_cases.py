"""Every policy case file under tests/policy/cases is one test (the file name is its id)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotplug_guard.cases import case_files, load_case, run_case

CASES = Path(__file__).parent / "cases"


@pytest.mark.parametrize("path", case_files([CASES]), ids=lambda p: p.stem)
def test_case(path: Path) -> None:
    outcome = run_case(load_case(path))
    assert outcome.passed, "\n".join(outcome.failures)


def test_every_rule_has_a_denying_and_an_allowing_case() -> None:
    from policy import CATALOGUE

    texts = {p.stem: p.read_text() for p in case_files([CASES])}
    for info in CATALOGUE:
        mentioning = [name for name, text in texts.items() if f"rule: {info.id}" in text]
        allowing = [name for name in texts if name.startswith(info.id) and "allowed" in name]
        assert mentioning, f"no case expects a cause from {info.id}"
        assert allowing, f"no case named {info.id}-*allowed* shows what {info.id} lets through"
