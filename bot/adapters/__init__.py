"""Adapters to the outside world the service reaches out to: the SQLite store, the Vast.ai
API and its market prices, and the images (charts, the option table) attached to messages.

Each translates between its technology and the core's plain values; none imports the
service, the chat adapters or the command line.
"""

__all__: list[str] = []
