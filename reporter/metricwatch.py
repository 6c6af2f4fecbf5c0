"""The metric a user asks the bot to watch, read from the training command's output.

``probecast run --watch-metric reward`` finds ``reward`` in lines such as
``reward: 0.53``, ``reward=0.53`` or ``{'loss': 1.2, 'reward': 0.53}`` (HF's log dict),
and hands the latest value to the next step reported, once: a value printed once an
epoch must not be sent with every step, or the bot would see it as constant.
"""

from __future__ import annotations

import math
import re

__all__ = ["LineMetric"]

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"


class LineMetric:
    """The latest value of one named metric seen in a stream of log lines."""

    def __init__(self, name: str) -> None:
        if not name.strip():
            raise ValueError("the metric needs a name")
        self.name = name
        self._pattern = re.compile(
            rf"(?<![\w/.-]){re.escape(name)}['\"]?\s*[:=]\s*['\"]?({_NUM})(?![\w.])",
            re.IGNORECASE,
        )
        self._value: float | None = None

    def see(self, line: str) -> None:
        match = self._pattern.search(line)
        if match is not None:
            value = float(match[1])
            if math.isfinite(value) or math.isnan(value) or math.isinf(value):
                self._value = value

    def take(self) -> float | None:
        """The value seen since the last ``take``, if any."""
        value, self._value = self._value, None
        return value
