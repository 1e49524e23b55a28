"""The one error type sub-commands raise for bad input (exit code 2, no traceback)."""


class UsageError(Exception):
    """Bad input from the user: a missing file, invalid YAML, a wrong config value."""
