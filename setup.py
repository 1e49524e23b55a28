"""Build hook: compile the policy engine with mypyc when HOTPLUG_GUARD_MYPYC=1.

Everything else about the package is declared in pyproject.toml. Without the
variable the wheel is pure Python. With it, the modules of `policy/` are also
compiled to C extensions, which Python imports in preference to the sources:
the same engine, checked by the same tests, about three times as fast (README,
"Performance"). Compiling needs mypy and a C compiler in the build environment:

    pip install mypy setuptools
    HOTPLUG_GUARD_MYPYC=1 pip wheel --no-build-isolation --no-deps --wheel-dir dist .
"""

import os

from setuptools import setup

COMPILE_ENV = "HOTPLUG_GUARD_MYPYC"


def extensions() -> list[object]:
    if os.environ.get(COMPILE_ENV) != "1":
        return []
    from mypyc.build import mypycify  # noqa: PLC0415 - only when compiling

    return list(mypycify(["policy"], opt_level="3"))


setup(ext_modules=extensions())
