"""Mutation testing of the policy engine: kill rate per module, and the mutants that survive.

mutmut (pinned below; installed into the running environment when missing) makes small
faults in `policy/`, one at a time, and runs the engine's fast tests against each: the
case files and the engine's unit and property tests, with hypothesis under its
`mutation` profile (tests/policy/conftest.py). A mutant is killed when a test fails.
The settings are `[tool.mutmut]` in pyproject.toml.

It runs in a copy of the tree (mutmut writes its `mutants/` there), one module after the
other, on one core unless `--max-children` says more. Mutants that cannot be killed,
because no input tells them from the engine, are listed with the reason in
`mutation_equivalents.yaml` next to this file and left out of the rate; an entry no
surviving mutant matches any more is reported, so the list cannot rot.

Run: `python -m benchmarks.mutation [MODULE ...] [--fail-under PERCENT]`, e.g.
`python -m benchmarks.mutation slots transitions`; without modules, every module of
`policy/`. Prints one line per module and the diff of every mutant that survived.
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = "3.8.1"
EQUIVALENTS = Path(__file__).with_name("mutation_equivalents.yaml")
# mutmut's statuses: a fault the tests noticed (a timeout is an endless loop they
# noticed, a crash a broken interpreter), one they missed, and a run that says nothing
DETECTED = {"killed", "timeout", "segfault"}
MISSED = {"survived", "no tests", "suspicious"}
MUTANT = re.compile(r"^\s+(?P<name>\S+): (?P<status>.+)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Mutant:
    name: str  # e.g. policy.slots.x_free_ports__mutmut_12
    status: str

    @property
    def module(self) -> str:
        return re.sub(r"\.x(_|ǁ).*$", "", self.name)

    @property
    def function(self) -> str:
        """`policy.slots.free_ports` or `policy.views.Class.method`: the mutant's key."""
        mangled = re.sub(r"__mutmut_\d+$", "", self.name)
        module, _, tail = mangled.rpartition(".x")  # x_function, xǁClassǁmethod
        return f"{module}.{tail[1:] if tail.startswith('_') else tail[1:].replace('ǁ', '.')}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Equivalent:
    function: str
    change: tuple[str, ...]  # the diff's changed lines, `-`/`+` and stripped content
    reason: str


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="modules of policy/ (default: all)")
    parser.add_argument("--max-children", type=int, default=1, help="mutants run in parallel")
    parser.add_argument("--fail-under", type=float, default=0.0, help="exit 1 below this rate")
    parser.add_argument("--workdir", type=Path, help="keep the copy and mutmut's results here")
    args = parser.parse_args(argv)
    known = sorted(path.stem for path in (ROOT / "policy").glob("*.py") if path.stem != "__init__")
    modules = args.modules or known
    unknown = sorted(set(modules) - set(known))
    if unknown:
        parser.error(f"not a module of policy/ with functions: {', '.join(unknown)}")
    ensure_mutmut()
    equivalents = load_equivalents(EQUIVALENTS)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hotplug-guard-mutation-"))
    try:
        copy_tree(workdir)
        print(f"mutmut {MUTMUT}, {args.max_children} at a time, in {workdir}", flush=True)
        print(f"{'module':<22} {'mutants':>7} {'killed':>7} {'equiv.':>7} {'missed':>7}  rate")
        rates: dict[str, float] = {}
        missed: list[tuple[Mutant, str]] = []
        matched: set[Equivalent] = set()
        started = time.monotonic()
        for module in modules:
            began = time.monotonic()
            if not has_functions(ROOT / "policy" / f"{module}.py"):
                print(f"policy.{module:<15} {0:>7}  (declarations only: mutmut mutates functions)")
                continue
            mutants = run_module(workdir, module, max_children=args.max_children)
            diffs = {m.name: show(workdir, m.name) for m in mutants if m.status not in DETECTED}
            counts = Counter[str]()
            for mutant in mutants:
                equivalent = None
                if mutant.status not in DETECTED:
                    equivalent = match(mutant, diffs[mutant.name], equivalents)
                if equivalent is not None:
                    matched.add(equivalent)
                    counts["equivalent"] += 1
                elif mutant.status in DETECTED:
                    counts["killed"] += 1
                elif mutant.status in MISSED:
                    counts["missed"] += 1
                    missed.append((mutant, diffs[mutant.name]))
                else:
                    raise SystemExit(f"{mutant.name}: mutmut says {mutant.status!r}")
            judged = counts["killed"] + counts["missed"]
            rates[module] = 100.0 * counts["killed"] / judged if judged else 100.0
            print(
                f"policy.{module:<15} {len(mutants):>7} {counts['killed']:>7} "
                f"{counts['equivalent']:>7} {counts['missed']:>7}  {rates[module]:5.1f}%"
                f"  ({minutes(time.monotonic() - began)})",
                flush=True,
            )
        print(f"all modules in {minutes(time.monotonic() - started)}")
        for mutant, diff in missed:
            print(f"\n# {mutant.name}: {mutant.status}\n{diff}")
        in_scope = {e for e in equivalents if e.function.split(".")[1] in modules}
        for stale in sorted(in_scope - matched, key=lambda e: e.function):
            print(f"\nno surviving mutant matches the equivalent {stale.function}: {stale.change}")
        below = [module for module, rate in rates.items() if rate < args.fail_under]
        return 1 if below or in_scope - matched else 0
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def has_functions(path: Path) -> bool:
    return any(isinstance(node, ast.FunctionDef) for node in ast.walk(ast.parse(path.read_text())))


def ensure_mutmut() -> None:
    """Install the pinned mutmut into this environment unless it is there already."""
    try:
        installed = importlib.metadata.version("mutmut")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed != MUTMUT:
        print(f"installing mutmut=={MUTMUT} (found {installed})", flush=True)
        pip = [sys.executable, "-m", "pip", "install", "--quiet", f"mutmut=={MUTMUT}"]
        subprocess.run(pip, check=True)


def copy_tree(workdir: Path) -> None:
    """The checkout's files (tracked and new, not ignored) into `workdir`, afresh."""
    shutil.rmtree(workdir / "mutants", ignore_errors=True)
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            target = workdir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def run_module(workdir: Path, module: str, *, max_children: int) -> list[Mutant]:
    """Run every mutant of `policy.<module>` afresh and return them with their status."""
    pattern = f"policy.{module}.*"
    log = workdir / f"mutmut-{module}.log"
    with log.open("w") as out:
        done = mutmut(workdir, "run", f"--max-children={max_children}", pattern, stdout=out)
    if done.returncode != 0:
        sys.stdout.write(log.read_text(errors="replace")[-4000:])
        raise SystemExit(f"mutmut failed on policy.{module}; its output: {log}")
    results = mutmut(workdir, "results", "--all=true", stdout=subprocess.PIPE).stdout
    return [m for m in parse_results(results) if m.module == f"policy.{module}"]


def parse_results(text: str) -> Iterator[Mutant]:
    for line in text.splitlines():
        found = MUTANT.match(line)
        if found:
            yield Mutant(name=found["name"], status=found["status"])


def show(workdir: Path, name: str) -> str:
    """The mutant's diff against the source, as `mutmut show` prints it."""
    text = mutmut(workdir, "show", name, stdout=subprocess.PIPE).stdout
    return "\n".join(text.splitlines()[1:])  # without mutmut's `# name: status` line


def mutmut(workdir: Path, *args: str, stdout: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mutmut", *args],
        cwd=workdir,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )


def changed_lines(diff: str) -> tuple[str, ...]:
    """The `-`/`+` lines of a unified diff, content stripped: what identifies a mutant."""
    return tuple(
        f"{line[0]} {line[1:].strip()}"
        for line in diff.splitlines()
        if line[:1] in ("-", "+") and not line.startswith(("---", "+++"))
    )


def load_equivalents(path: Path) -> list[Equivalent]:
    entries = yaml.safe_load(path.read_text()) or []
    return [
        Equivalent(
            function=entry["function"],
            change=changed_lines(entry["change"]),
            reason=entry["reason"],
        )
        for entry in entries
    ]


def match(mutant: Mutant, diff: str, equivalents: Iterable[Equivalent]) -> Equivalent | None:
    change = changed_lines(diff)
    for equivalent in equivalents:
        if equivalent.function == mutant.function and equivalent.change == change:
            return equivalent
    return None


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


if __name__ == "__main__":
    sys.exit(main())
