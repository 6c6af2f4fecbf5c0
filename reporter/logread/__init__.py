"""Reading training logs: named readers for known formats and one generic reader.

`reporter.logparse.LogParser` drives them; this package holds what they share
(`base`), the generic template-mining reader (`generic`) and the newer named readers
(`named`).
"""

from reporter.logread.base import Alert, Progress, Record

__all__ = ["Alert", "Progress", "Record"]
