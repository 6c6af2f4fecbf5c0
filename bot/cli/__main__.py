"""``python -m bot.cli``: the ``probecast`` command."""

import sys

from bot.cli.main import main

sys.exit(main())
