"""probecast reporter: runs beside the training job and posts progress to the bot.

Light by design (httpx, pydantic, psutil): this is what users install on the GPU box.
It never imports ``bot``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
