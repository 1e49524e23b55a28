"""Field paths and JSON pointers."""

from __future__ import annotations

from policy import paths


def test_pointer_tokens_escape_tilde_before_slash() -> None:
    # RFC 6901: `~` becomes `~0` first, so the `~1` written for `/` stays as it is
    assert paths.escape("hotplug-guard.io/request") == "hotplug-guard.io~1request"
    assert paths.escape("a~/b") == "a~0~1b"
    assert paths.escape("~1") == "~01"


def test_field_paths_name_an_entry_or_its_child() -> None:
    assert str(paths.interface(2)) == "spec.template.spec.domain.devices.interfaces[2]"
    assert (
        paths.interface(2).child("model").text
        == "spec.template.spec.domain.devices.interfaces[2].model"
    )
    assert (
        paths.network(0).child("multus").child("networkName").text
        == "spec.template.spec.networks[0].multus.networkName"
    )
    assert paths.annotation("k/v").text == "metadata.annotations[k/v]"


def test_field_paths_render_as_kubevirt_renders_its_field_paths() -> None:
    """`k8sfield.NewPath("spec").Child("a").Index(0).Key("b.c/d")` renders `spec.a[0][b.c/d]`."""
    built = paths.new_path("spec").child("a").index(0).key("b.c/d")
    assert built.text == "spec.a[0][b.c/d]"
    assert paths.new_path("spec", "a").index(0).key("b.c/d") == built


def test_a_field_path_is_a_value_its_children_do_not_change() -> None:
    root = paths.new_path("metadata")
    child = root.child("annotations")
    assert root.text == "metadata"
    assert child == paths.new_path("metadata", "annotations")
    assert hash(child) == hash(paths.ANNOTATIONS)
