"""Field paths and JSON pointers."""

from __future__ import annotations

from policy import paths


def test_pointer_tokens_escape_tilde_before_slash() -> None:
    # RFC 6901: `~` becomes `~0` first, so the `~1` written for `/` stays as it is
    assert paths.escape("hotplug-guard.io/request") == "hotplug-guard.io~1request"
    assert paths.escape("a~/b") == "a~0~1b"
    assert paths.escape("~1") == "~01"


def test_field_paths_name_an_entry_or_its_child() -> None:
    assert paths.interface(2) == "spec.template.spec.domain.devices.interfaces[2]"
    assert paths.interface(2, "model") == "spec.template.spec.domain.devices.interfaces[2].model"
    assert (
        paths.network(0, "multus.networkName")
        == "spec.template.spec.networks[0].multus.networkName"
    )
    assert paths.annotation("k/v") == "metadata.annotations[k/v]"
