"""The Helm commands in the docs render as written, and on OpenShift pass restricted-v2."""

from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path
from typing import Any

import helm_python
import pytest

from tests.chart import scc
from tests.chart.manifests import ROOT, merged, render

DOCS = ("README.md", "charts/hotplug-guard/README.md", "docs/deploy.md", "docs/openshift.md")
PARSERS = {"--set": helm_python.parse_set_string, "--set-json": helm_python.parse_set_json}


def helm_commands(document: Path) -> list[list[str]]:
    """The `helm install` and `helm upgrade` commands of a document's sh blocks, as words."""
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", document.read_text(), re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith(("helm install ", "helm upgrade ")):
                commands.append(shlex.split(line, comments=True))
    return commands


def values_of(words: list[str]) -> dict[str, Any]:
    """The values a command's --set and --set-json flags give, merged in order."""
    values: dict[str, Any] = {}
    for flag, expression in itertools.pairwise(words):
        if flag in PARSERS:
            values = merged(values, PARSERS[flag](expression))
    return values


@pytest.mark.parametrize("document", DOCS)
def test_the_helm_commands_of_the_docs_render(document: str) -> None:
    commands = helm_commands(ROOT / document)
    assert commands, f"{document} has no helm command"
    for words in commands:
        assert "charts/hotplug-guard" in words, words
        render(values_of(words))  # Helm checks the values against the schema


def test_the_openshift_install_runs_under_restricted_v2_with_the_service_ca() -> None:
    [install, *_] = helm_commands(ROOT / "docs" / "openshift.md")
    values = values_of(install)
    assert values["certs"]["mode"] == "openshift-service-ca"
    release = render(merged(values, {"openshift": True}))  # what `auto` finds there
    for pod in release.pods():
        assert scc.violations(pod) == []
    image = release.deployment_pod()["containers"][0]["image"]
    assert image.startswith("image-registry.openshift-image-registry.svc:5000/hotplug-guard/")
