"""Statistics for scores: means with bootstrap 95% intervals, paired deltas.

Bootstrap resampling uses a fixed seed, so the same run always reports the same interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

BOOTSTRAP_SAMPLES = 5000


def mean_ci95(values: Sequence[float], seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high) with a percentile bootstrap interval; one value gives [v, v]."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(data.mean())
    if data.size == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    resampled = data[rng.integers(0, data.size, size=(BOOTSTRAP_SAMPLES, data.size))].mean(axis=1)
    low, high = np.percentile(resampled, [2.5, 97.5])
    return mean, float(low), float(high)


def mean_of_group_means_ci95(groups: Sequence[Sequence[float]], seed: int = 0) -> tuple[float, float, float]:
    """Unweighted mean of group means (BALROG's overall score), resampling within each group."""
    arrays = [np.asarray(group, dtype=float) for group in groups if len(group)]
    if not arrays:
        return float("nan"), float("nan"), float("nan")
    mean = float(np.mean([group.mean() for group in arrays]))
    rng = np.random.default_rng(seed)
    samples = np.zeros(BOOTSTRAP_SAMPLES)
    for group in arrays:
        samples += group[rng.integers(0, group.size, size=(BOOTSTRAP_SAMPLES, group.size))].mean(axis=1)
    samples /= len(arrays)
    low, high = np.percentile(samples, [2.5, 97.5])
    return mean, float(low), float(high)


def mean_defined(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are defined (None = undefined, e.g. a ratio with no denominator)."""
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None
