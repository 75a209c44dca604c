"""The `optlab` command: argv -> a sub-command, errors -> one line and an exit code."""
from optlab.cli.app import console_main, main

__all__ = ["console_main", "main"]
