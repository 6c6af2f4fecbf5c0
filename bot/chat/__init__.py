"""Chat adapters: one `Chat` interface, one adapter per platform."""

from bot.chat.base import Chat, MessageRef
from bot.chat.console import ConsoleChat

__all__ = ["Chat", "ConsoleChat", "MessageRef"]
