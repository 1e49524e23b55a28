"""The profile-guided build's pieces: its training workload and setup.py's stage variable.

The whole build (scripts/build-compiled) runs in scripts/check-compiled, whose tests then
run against what it compiled.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINING = ROOT / "scripts" / "pgo_training.py"


def train(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TRAINING), *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )


def test_training_runs_every_case_offline_and_through_the_app() -> None:
    result = train("examples/cases")
    assert result.returncode == 0, result.stderr
    assert "profile training: 2 cases x 3, offline and through the app" in result.stdout


def test_training_fails_on_a_case_whose_expectation_does_not_hold(tmp_path: Path) -> None:
    """A miscompiled instrumented build must stop the build, not train its profile."""
    case = (ROOT / "examples/cases/plug-bridge-allowed.yaml").read_text()
    wrong = case.replace("fixture: ../", f"fixture: {ROOT}/examples/")
    wrong = wrong.replace("allowed: true", "allowed: false")
    assert wrong.count(str(ROOT)) == 3
    assert "allowed: false" in wrong
    (tmp_path / "plug-bridge-allowed.yaml").write_text(wrong)
    result = train(tmp_path)
    assert result.returncode == 1
    assert "FAIL plug-bridge-allowed: allowed: expected False" in result.stderr


def test_training_without_cases_says_so(tmp_path: Path) -> None:
    assert train().returncode == 2
    result = train(tmp_path)
    assert result.returncode == 2
    assert f"profile training: no case files under {tmp_path}" in result.stderr
    result = train(tmp_path / "missing")
    assert result.returncode == 2
    assert "no such file or directory" in result.stderr


def test_setup_refuses_an_unknown_profile_stage() -> None:
    result = subprocess.run(
        [sys.executable, "setup.py", "--name"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={**os.environ, "HOTPLUG_GUARD_MYPYC": "1", "HOTPLUG_GUARD_PGO": "generated"},
    )
    assert result.returncode == 1
    assert "HOTPLUG_GUARD_PGO='generated': expected one of generate, use (or unset)" in (
        result.stderr
    )
