"""Evaluation: change detection, mutations, then the rules over the mutated object."""

from __future__ import annotations

from policy.config import PolicyConfig
from policy.review import UNKNOWN_CONTEXT, Context, Mode, Review
from policy.verdicts import Verdict

DEFAULT_CONFIG = PolicyConfig()


def evaluate(
    review: Review,
    context: Context = UNKNOWN_CONTEXT,
    config: PolicyConfig = DEFAULT_CONFIG,
    *,
    mode: Mode = Mode.MUTATE,
) -> Verdict:
    """Judge one VirtualMachine admission request.

    In `Mode.MUTATE` the verdict carries the patch that makes the request safe and
    the causes found on the patched object; in `Mode.VALIDATE` nothing is patched
    and what a mutation would have fixed is denied instead. Never raises on any
    input shape.
    """
    raise NotImplementedError  # implemented in the next commit
