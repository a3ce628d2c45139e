"""Statistical power: the smallest difference a comparison can detect, and the seeds it needs.

Method: the two-sided test of a mean difference at level `alpha` with power `power` (80%),
    MDE = (t[1 - alpha/2, df] + t[power, df]) * standard error,
with standard error sd_d / sqrt(n) for n seeds paired between two runs (sd_d: the standard
deviation of the per-seed differences), or sd * sqrt(2 / n) for two independent runs of n
episodes each. This is the normal-theory formula behind standard power tables, with Student's
t quantiles instead of normal ones so that a handful of seeds is not flattered (exact for 1
and 2 degrees of freedom, else the Cornish-Fisher expansion: within 1% of the exact quantile
from 3 degrees of freedom, 0.2% from 5). `harness compare` reports the interval of the paired delta by bootstrap; both rest
on the same approximate normality of a mean, and the MDE says how wide that interval will be
before the runs are made. Scores are in progression points (0-100).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA, POWER = 0.05, 0.80
_NORMAL = statistics.NormalDist()


def t_quantile(probability: float, df: float) -> float:
    """Student's t quantile: exact for 1 and 2 degrees of freedom, else the Cornish-Fisher
    expansion about the normal quantile (within 1% from 3 degrees of freedom, 0.2% from 5)."""
    if df == 1:  # Cauchy
        return math.tan(math.pi * (probability - 0.5))
    if df == 2:
        return (2 * probability - 1) / math.sqrt(2 * probability * (1 - probability))
    z = _NORMAL.inv_cdf(probability)
    if math.isinf(df):
        return z
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))  # fmt: skip


def mde(sd: float, n: int, paired: bool = True, alpha: float = ALPHA, power: float = POWER) -> float:
    """The minimal detectable difference: paired over n seeds (sd of the differences), or between
    two independent runs of n episodes each (sd of one run's scores). NaN below two seeds."""
    if n < 2:
        return float("nan")
    df = n - 1 if paired else 2 * n - 2
    error = sd / math.sqrt(n) if paired else sd * math.sqrt(2 / n)
    return (t_quantile(1 - alpha / 2, df) + t_quantile(power, df)) * error


def seeds_needed(sd: float, delta: float, paired: bool = True, alpha: float = ALPHA, power: float = POWER,
                 most: int = 1_000_000) -> int:  # fmt: skip
    """The fewest seeds whose MDE is at most `delta` (0 when sd is 0: any seed detects it)."""
    if sd <= 0:
        return 2
    n = 2
    while mde(sd, n, paired, alpha, power) > delta:
        n = n * 2 if n < most else most
        if n == most:
            break
    low, high = max(2, n // 2), n
    while low < high:  # the first n in (low, high] that detects delta
        middle = (low + high) // 2
        if mde(sd, middle, paired, alpha, power) <= delta:
            high = middle
        else:
            low = middle + 1
    return high


@dataclass(frozen=True)
class Spread:
    """What a power figure rests on: the standard deviation of per-seed scores (or differences)
    of one env, in points, and how many there were."""

    sd: float
    n: int
    paired: bool

    @classmethod
    def of(cls, values: Sequence[float], paired: bool) -> Spread:
        return cls(statistics.stdev(values) if len(values) > 1 else float("nan"), len(values), paired)

    @property
    def known(self) -> bool:
        """Whether the spread says anything: two scores at least, not all the same (a run where
        every episode scored alike tells nothing of how a better submission's scores spread)."""
        return not math.isnan(self.sd) and self.sd > 0

    def mde(self, alpha: float = ALPHA, power: float = POWER) -> float:
        return mde(self.sd, self.n, self.paired, alpha, power)


def mde_of_mean_of_means(spreads: Sequence[Spread], alpha: float = ALPHA, power: float = POWER) -> float:
    """The MDE of the unweighted mean of env means (BALROG's overall score): its variance is the
    mean of the envs' variances over k squared; degrees of freedom from the smallest env (cautious)."""
    if not spreads or any(spread.n < 2 or math.isnan(spread.sd) for spread in spreads):
        return float("nan")
    variance = sum(spread.sd**2 / spread.n * (1 if spread.paired else 2) for spread in spreads) / len(spreads) ** 2
    smallest = min(spread.n for spread in spreads)
    df = smallest - 1 if all(spread.paired for spread in spreads) else 2 * smallest - 2
    return (t_quantile(1 - alpha / 2, df) + t_quantile(power, df)) * math.sqrt(variance)
