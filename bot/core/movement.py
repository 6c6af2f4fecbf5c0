"""Has a metric moved, judged against its own noise? (issue 22)

An early block of values is compared with a recent one by the Mann–Whitney rank-sum
test: distribution-free, so under pure noise (no trend, whatever its spread) it calls
"movement" with probability at most ``alpha`` — a guarantee a fixed "2% drop" cannot
give. Ranks make it blind to scale and to outliers, and two-sided: a loss that rises
(a PPO actor loss) has moved as surely as one that falls. A constant series (zero
included) has no ranks to separate and never moves.

``min_delta`` (early stopping's) keeps a drift far below the metric's own size from
counting even when it is perfectly regular: it is relative to the larger median.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Movement", "Z_CLEAR", "Z_MOVED", "judge_movement", "min_block"]

Z_MOVED = 2.576  # two-sided alpha 0.01
Z_CLEAR = 3.291  # two-sided alpha 0.001: a held alert clears only on clearer movement


@dataclass(frozen=True)
class Movement:
    moved: bool
    z: float
    """Positive when the recent block ranks lower (the metric fell)."""
    early: float
    recent: float
    noise: float
    """Robust spread of the values about their block medians (1.4826 × MAD)."""
    constant: bool

    @property
    def change(self) -> float:
        return self.recent - self.early


def min_block(z_crit: float = Z_MOVED) -> int:
    """The smallest equal block size whose most extreme ranking reaches ``z_crit``:
    below it the test could never say "moved", so judging would be a foregone verdict."""
    k = 2
    while math.sqrt(3 * k * k / (2 * k + 1)) < z_crit + 0.5:  # margin for ties/correction
        k += 1
    return k


def _ranks(values: Sequence[float]) -> tuple[list[float], float]:
    """Average ranks (1-based) and the tie term Σ(t³ − t)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        rank = (i + j) / 2 + 1
        for idx in order[i : j + 1]:
            ranks[idx] = rank
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    return ranks, ties


def judge_movement(
    early: Sequence[float],
    recent: Sequence[float],
    *,
    z_crit: float = Z_MOVED,
    min_delta: float = 0.005,
) -> Movement:
    """Mann–Whitney z (with tie and continuity corrections) between two blocks."""
    n1, n2 = len(early), len(recent)
    if n1 == 0 or n2 == 0:
        raise ValueError("both blocks need values")
    med_e, med_r = statistics.median(early), statistics.median(recent)
    deviations = [abs(x - med_e) for x in early] + [abs(x - med_r) for x in recent]
    noise = 1.4826 * statistics.median(deviations)
    ranks, ties = _ranks([*early, *recent])
    n = n1 + n2
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return Movement(False, 0.0, med_e, med_r, noise, constant=True)
    diff = u1 - mean
    z = math.copysign(max(0.0, abs(diff) - 0.5), diff) / math.sqrt(var)
    scale = max(abs(med_e), abs(med_r))
    big_enough = abs(med_r - med_e) >= min_delta * scale
    return Movement(abs(z) >= z_crit and big_enough, z, med_e, med_r, noise, constant=False)
