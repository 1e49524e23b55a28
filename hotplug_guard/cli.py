"""Entry point of the `hotplug-guard` console script.

Each sub-command lives in `hotplug_guard.commands.<name>` and exposes
`register(subparsers)`; this module only assembles them and maps the exit codes:
0 allowed/ok, 1 denied/failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hotplug_guard import __version__
from hotplug_guard.commands import (
    certificates,
    controller,
    interfaces,
    policy_commands,
    serve,
    status,
)
from hotplug_guard.commands.helptext import FORMATTER, examples
from hotplug_guard.errors import UsageError

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hotplug-guard",
        description="Guard KubeVirt NIC hot plug / hot unplug: policy checks, admission "
        "webhook, certificates, companion controller, hot plug commands.",
        formatter_class=FORMATTER,
        epilog=examples("hotplug-guard check --help", "hotplug-guard COMMAND --help"),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    policy_commands.register(subparsers)
    serve.register(subparsers)
    certificates.register(subparsers)
    controller.register(subparsers)
    interfaces.register(subparsers)
    status.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except UsageError as error:
        print(f"hotplug-guard {args.command}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
