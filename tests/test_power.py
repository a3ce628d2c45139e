"""Statistical power (issue 24 part 4): the MDE and the seeds needed, on synthetic data whose
answer is known in closed form, and where `harness compare`, the leaderboard and `harness
power` show them."""

import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from harness.runs.power import Spread, mde, mde_of_mean_of_means, seeds_needed, t_quantile

Z_975, Z_80 = statistics.NormalDist().inv_cdf(0.975), statistics.NormalDist().inv_cdf(0.80)


def test_with_many_seeds_the_mde_is_the_normal_closed_form() -> None:
    # paired: (z_.975 + z_.80) * sd / sqrt(n); unpaired: the same times sqrt(2)
    n, sd = 40_000, 30.0
    assert mde(sd, n) == pytest.approx((Z_975 + Z_80) * sd / math.sqrt(n), rel=1e-4)
    assert mde(sd, n, paired=False) == pytest.approx((Z_975 + Z_80) * sd * math.sqrt(2 / n), rel=1e-4)


def test_t_quantiles_are_exact_where_known_and_close_elsewhere() -> None:
    assert t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-4)  # Cauchy: tan(0.475 pi)
    assert t_quantile(0.975, 2) == pytest.approx(4.3027, abs=1e-4)  # 0.95 / sqrt(0.04875)
    assert t_quantile(0.975, 10) == pytest.approx(2.2281, rel=2e-3)  # tables
    assert t_quantile(0.80, 5) == pytest.approx(0.9195, rel=2e-3)
    # with 10 seeds a paired sd of 10 points detects (t.975,9 + t.80,9) * 10 / sqrt(10)
    assert mde(10.0, 10) == pytest.approx((2.2622 + 0.8834) * 10 / math.sqrt(10), rel=3e-3)


def test_seeds_needed_is_the_fewest_that_detect_the_difference() -> None:
    needed = seeds_needed(10.0, 5.0)
    assert mde(10.0, needed) <= 5.0 < mde(10.0, needed - 1)
    # the normal answer, ((z + z) * sd / delta)^2 = 31.4, plus the t's small-sample share
    assert math.ceil(((Z_975 + Z_80) * 10 / 5) ** 2) == 32 and needed in (33, 34)


def test_the_overall_mde_combines_the_envs_variances() -> None:
    spreads = [Spread(20.0, 50, paired=True), Spread(40.0, 50, paired=True)]
    variance = (20.0**2 / 50 + 40.0**2 / 50) / 4
    expected = (t_quantile(0.975, 49) + t_quantile(0.80, 49)) * math.sqrt(variance)
    assert mde_of_mean_of_means(spreads) == pytest.approx(expected)
    assert math.isnan(mde_of_mean_of_means([Spread.of([1.0], paired=True)]))
    assert not Spread.of([0.0, 0.0, 0.0], paired=False).known  # all alike: says nothing


def _power(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", "power", *args], capture_output=True, text=True, timeout=120)


def test_harness_power_answers_from_a_stated_spread_and_refuses_without_one(tmp_path: Path) -> None:
    answered = _power("--suite", "standard", "--delta", "5", "--sd", "10")
    assert answered.returncode == 0, answered.stderr
    crafter = next(line for line in answered.stdout.splitlines() if line.startswith("| crafter"))
    needed = seeds_needed(10.0, 5.0, paired=False)
    assert f"| {needed} " in crafter and f"{mde(10.0, 10, paired=False):.1f}" in crafter
    refused = _power("--suite", "standard")
    assert refused.returncode != 0 and "--sd" in refused.stderr


def test_the_cli_defaults_are_the_power_modules() -> None:
    from harness import cli_power
    from harness.runs import power

    assert (cli_power.ALPHA, cli_power.POWER) == (power.ALPHA, power.POWER)
