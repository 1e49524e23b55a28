"""Scripts that print numbers (not tests)."""

from __future__ import annotations

import policy.engine


def engine_build() -> str:
    """Which build of the policy engine this process runs: the sources or the compiled one."""
    origin = policy.engine.__file__ or ""
    return "compiled with mypyc" if origin.endswith((".so", ".pyd")) else "pure Python"
