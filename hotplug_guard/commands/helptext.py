"""What every sub-command's `--help` ends with: example command lines, kept as written."""

from __future__ import annotations

import argparse

HEADING = "examples:\n"


class Formatter(argparse.HelpFormatter):
    """Wraps descriptions as argparse does, but keeps the lines of the examples as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(HEADING):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


FORMATTER = Formatter


def examples(*lines: str) -> str:
    """An epilog of example lines: `hotplug-guard ...` commands and `# comments` on them."""
    return HEADING + "\n".join(f"  {line}" for line in lines)
