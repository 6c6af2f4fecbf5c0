"""Formatting shared by every message and report: one way to say a duration."""

from __future__ import annotations

import math


def fmt_duration(seconds: float | None) -> str:
    """``4.2s``, ``42s``, ``3m 07s``, ``17m``, ``1h 05m``, ``3d 4h``: phone-readable."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 600:  # short runs: the seconds still tell scenarios apart
        whole = round(seconds)
        return f"{whole // 60}m {whole % 60:02d}s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


__all__ = ["fmt_duration"]
