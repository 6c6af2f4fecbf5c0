"""Data files shipped with probecast (the GPU catalog)."""

__all__: list[str] = []
