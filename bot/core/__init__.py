"""The pure core: estimates, option rows, decisions and rendering. No clock, no I/O."""

__all__: list[str] = []
