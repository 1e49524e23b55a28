"""Hypothesis profiles of the engine's tests.

`mutation` is loaded by the mutation run (`python -m benchmarks.mutation`), which runs
these tests once per mutant: a few examples, the same ones every time, so a mutant's
verdict is fast and reproducible. The properties scale their example counts from the
loaded profile (`examples`).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "mutation",
    max_examples=10,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
