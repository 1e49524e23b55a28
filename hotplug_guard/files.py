"""Reading the user's YAML files with errors that name the file and the line.

Policy config problems come back from the engine as key paths; this module maps
such a path to the line of the key in the file so the user can jump to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from hotplug_guard.errors import UsageError
from policy import ConfigError, PolicyConfig, parse_config

DEFAULT_CONFIG_RESOURCE = "default-config.yaml"


def read_text(path: Path) -> str:
    """The file's text, or a UsageError that says why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, expected a YAML file") from None
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror}") from None


def load_yaml(path: Path, *, text: str | None = None) -> Any:
    """The single YAML document in `path` (a `---` header is fine)."""
    source = read_text(path) if text is None else text
    try:
        documents = [doc for doc in yaml.safe_load_all(source) if doc is not None]
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise UsageError(f"{where}: invalid YAML: {error.problem}") from None
    except yaml.YAMLError as error:
        raise UsageError(f"{path}: invalid YAML: {error}") from None
    if len(documents) > 1:
        raise UsageError(f"{path}: expected one YAML document, found {len(documents)}")
    return documents[0] if documents else None


def line_of(text: str, path: Sequence[str | int]) -> int | None:
    """1-based line of the node at key `path` in YAML `text`, or None if not found."""
    try:
        node: yaml.Node | None = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None if node is None else node.start_mark.line + 1
    for key in path:
        if isinstance(node, yaml.MappingNode):
            match = next((pair for pair in node.value if pair[0].value == str(key)), None)
            if match is None:
                return line
            line = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def default_config_text() -> str:
    """The commented default policy config that ships with the package."""
    return resources.files("policy").joinpath(DEFAULT_CONFIG_RESOURCE).read_text(encoding="utf-8")


def load_policy_config(path: Path | None) -> PolicyConfig:
    """The policy config in `path` on top of the defaults; the defaults alone for None."""
    if path is None:
        return PolicyConfig()
    text = read_text(path)
    data = load_yaml(path, text=text)
    try:
        return parse_config(data)
    except ConfigError as error:
        line = line_of(text, error.path)
        where = f"{path}:{line}" if line is not None else str(path)
        raise UsageError(f"{where}: {error}") from None
