"""The controller's status annotation: compact JSON that the engine's parser reads back."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from policy.annotations import HotplugStatus, Phase, parse_status, render_status

statuses = st.builds(
    HotplugStatus,
    id=st.text(max_size=20),
    phase=st.sampled_from(Phase),
    migration=st.text(max_size=40),
    attempts=st.integers(0, 2**31),
    message=st.text(max_size=80),
    generation=st.integers(0, 2**63),
    since=st.text(max_size=30),
)


@given(statuses)
def test_status_round_trips_through_compact_json(status: HotplugStatus) -> None:
    text = render_status(status)
    assert json.loads(text) == {
        "id": status.id,
        "phase": status.phase.value,
        "migration": status.migration,
        "attempts": status.attempts,
        "message": status.message,
        "generation": status.generation,
        "since": status.since,
    }
    assert parse_status(text) == status


def test_a_status_without_generation_or_since_reads_as_zero_and_empty() -> None:
    status = parse_status('{"id":"a","phase":"Migrating","migration":"m","attempts":1}')
    assert status == HotplugStatus(id="a", phase=Phase.MIGRATING, migration="m", attempts=1)
