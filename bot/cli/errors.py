"""The one exception a ``probecast`` subcommand raises for a mistake the user can fix.

Its own module so every subcommand imports it at the top: ``bot.cli.main`` imports the
subcommands, so they cannot import it.
"""

from __future__ import annotations


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


__all__ = ["CliError"]
