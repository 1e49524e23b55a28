"""KubeVirt's MAC address check reads a MAC as Go's `net.ParseMAC` does."""

from __future__ import annotations

import pytest

from policy.specrules import mac_length

INFINIBAND = ":".join(["00"] * 20)


@pytest.mark.parametrize(
    ("mac", "size"),
    [
        ("de:ad:00:00:be:af", 6),
        ("DE-AD-00-00-BE-AF", 6),
        ("dead.0000.beaf", 6),
        ("de:ad:00:00:be:af:be:af", 8),
        ("dead.0000.beaf.beaf", 8),
        (INFINIBAND, 20),
        (".".join(["0000"] * 10), 20),
        ("de:ad:00:00:be", None),
        ("de:ad:00:00:be:af:00", None),  # 7 bytes: no such MAC
        ("de:ad-00:00:be:af", None),
        ("de:ad:00:00:be:ag", None),
        ("deXadX00X00XbeXaf", None),
        ("dead.0000.beag", None),
        ("dead.0000:beaf", None),
    ],
)
def test_mac_lengths_are_read_as_go_parses_them(mac: str, size: int | None) -> None:
    assert mac_length(mac) == size
