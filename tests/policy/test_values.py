"""The engine's values compare, hash and print like the frozen dataclasses they replace."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from policy.annotations import Ledger
from policy.instances import Condition
from policy.verdicts import Cause, CauseType, PatchOp, Verdict

POLICY = Path(__file__).parents[2] / "policy"


def _value_classes() -> list[ast.ClassDef]:
    """Every class in policy/ that derives from Value, read from the sources (the
    compiled build keeps no signatures to inspect)."""
    found = []
    for module in sorted(POLICY.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(base, ast.Name) and base.id == "Value" for base in node.bases
            ):
                found.append(node)
    return found


def _fields(cls: ast.ClassDef) -> list[str]:
    for node in cls.body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "FIELDS":
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"{cls.name} has no FIELDS")


def _parameters(cls: ast.ClassDef) -> list[str]:
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == "__init__":
            return [arg.arg for arg in node.args.args[1:] + node.args.kwonlyargs]
    raise AssertionError(f"{cls.name} has no __init__")


def test_every_value_class_is_found() -> None:
    assert {"Interface", "Changes", "Verdict", "Ledger"} <= {c.name for c in _value_classes()}


@pytest.mark.parametrize("cls", _value_classes(), ids=lambda cls: cls.name)
def test_fields_name_every_constructor_argument_in_order(cls: ast.ClassDef) -> None:
    assert _fields(cls) == _parameters(cls)


def test_values_are_equal_and_hash_alike_when_their_fields_are() -> None:
    first = Verdict(allowed=True, patch=(PatchOp(op="add", path="/a", value="1"),))
    second = Verdict(allowed=True, patch=(PatchOp(op="add", path="/a", value="1"),))
    assert first == second
    assert hash(first) == hash(second)
    assert first != Verdict(allowed=True)
    assert Ledger() != Ledger(vmi="uid")
    assert PatchOp(op="remove", path="/a") != Ledger()


def test_repr_names_the_class_and_its_fields() -> None:
    cause = Cause(rule="plug-model", type=CauseType.INVALID, field="f", message="m")
    assert repr(cause) == (
        "Cause(rule='plug-model', type=<CauseType.INVALID: 'FieldValueInvalid'>, field='f', "
        "message='m')"
    )


def test_values_of_different_classes_are_never_equal() -> None:
    # the same field values, in two classes
    op = PatchOp(op="a", path="b", value="c")
    condition = Condition(status="a", reason="b", message="c")
    assert op._values() == condition._values()
    assert op != condition
