"""The ``probecast`` command line: one module per subcommand, each thin over the library."""

from bot.cli.errors import CliError
from bot.cli.main import build_parser, main

__all__ = ["CliError", "build_parser", "main"]
