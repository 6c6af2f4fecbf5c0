"""probecast bot service: ingest, estimation, scheduling and chat.

Nothing here builds a client, reads settings or opens a database at import time;
`bot.app.build(settings)` wires the real adapters.
"""

__all__: list[str] = []
