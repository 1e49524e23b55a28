"""Build hook: compile the engine and the review path with mypyc when HOTPLUG_GUARD_MYPYC=1.

Everything else about the package is declared in pyproject.toml. Without the
variable the wheel is pure Python. With it, the modules of `policy/` and the
webhook's review path (`COMPILED`) are also compiled to C extensions, which Python
imports in preference to the sources: the same code, checked by the same tests
(`scripts/check-compiled` builds with this file), the engine about five times as
fast (README, "Performance"). Compiling needs mypy and a C compiler in the build
environment:

    pip install mypy setuptools
    HOTPLUG_GUARD_MYPYC=1 pip wheel --no-build-isolation --no-deps --wheel-dir dist .

HOTPLUG_GUARD_PGO picks a stage of a profile-guided build: `generate` compiles the modules
to count what runs, `use` compiles them again laid out by those counts. The image and
`scripts/check-compiled` build that way, with `scripts/build-compiled`, which runs the
training workload between the two.
"""

import os

from setuptools import setup

COMPILE_ENV = "HOTPLUG_GUARD_MYPYC"
PGO_ENV = "HOTPLUG_GUARD_PGO"
PGO_FLAGS = {
    # counters updated atomically: right even where the workload runs threads
    "generate": (["-fprofile-generate", "-fprofile-update=atomic"], ["-fprofile-generate"]),
    # code the training never ran stays optimised for speed, not for size; the profile is
    # read from beside each object file, so both stages build in the same directory
    "use": (["-fprofile-use", "-fprofile-partial-training", "-Wno-missing-profile"], []),
    "": ([], []),
}
COMPILED = [
    "policy",
    # the webhook's own work around the engine on every review: parsing, rendering,
    # the patch check (the Flask app, the server and the caches stay interpreted)
    "webhook/admission.py",
    "webhook/context.py",
    "webhook/patches.py",
    "webhook/reviews.py",
]


def extensions() -> list[object]:
    if os.environ.get(COMPILE_ENV) != "1":
        return []
    stage = os.environ.get(PGO_ENV, "")
    if stage not in PGO_FLAGS:
        raise SystemExit(f"{PGO_ENV}={stage!r}: expected one of generate, use (or unset)")
    compile_flags, link_flags = PGO_FLAGS[stage]
    from mypyc.build import mypycify  # noqa: PLC0415 - only when compiling

    built = list(mypycify(COMPILED, opt_level="3"))
    for extension in built:
        # mypyc's functions call each other directly, not through the PLT as symbols
        # another library could replace (only the modules' init functions are exported;
        # the modules reach the shared library's functions through a capsule), and the
        # compiler may inline them; calls into libpython skip the PLT stub as well.
        # Under load a review's code comes back from memory each time, and this is code
        # it need not fetch (docs/webhook.md, "Performance"). New lists, not extended
        # ones: mypycify's extensions share theirs.
        extension.extra_compile_args = [
            *extension.extra_compile_args,
            "-fvisibility=hidden",
            "-fno-plt",
            *compile_flags,
        ]
        extension.extra_link_args = [*extension.extra_link_args, *link_flags]
    return built


setup(ext_modules=extensions())
