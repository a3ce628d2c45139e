"""`harness power`: how many seeds a suite needs to detect a difference, per game.

The spread of scores comes from a run (`--from RUN`: each env's episodes), from two runs of
the same seeds (`--from A --from B`: the per-seed differences, a paired design), or is stated
(`--sd`). One run's spread, used for a comparison of two submissions on the same seeds, is
taken as if the two were independent (no correlation between them assumed): the cautious side.
"""

from __future__ import annotations

import math
from pathlib import Path

from tabulate import tabulate

from harness.runs.jobs import is_scored
from harness.runs.power import Spread, mde, mde_of_mean_of_means, seeds_needed
from harness.runs.read import Run, read_run
from harness.runs.suites import Suite


class PowerError(ValueError):
    """A power question the given runs or figures cannot answer."""


def _scores(run: Run) -> dict[tuple[str, str, int], float]:
    return {(e.env, e.task, e.seed): 100 * e.progression for e in run.episodes() if is_scored(e)}


def spreads_from(runs: list[Path], sd: float | None, envs: list[str]) -> dict[str, Spread]:
    """Each env's spread of scores (points): stated, from one run, or paired from two."""
    if sd is not None:
        return {env: Spread(sd, 0, paired=False) for env in envs}
    if len(runs) == 1:
        scores = _scores(read_run(runs[0]))
        return {env: Spread.of([v for k, v in scores.items() if k[0] == env], paired=False)
                for env in envs if any(k[0] == env for k in scores)}  # fmt: skip
    if len(runs) == 2:
        first, second = (_scores(read_run(path)) for path in runs)
        shared = sorted(set(first) & set(second))
        return {env: Spread.of([second[k] - first[k] for k in shared if k[0] == env], paired=True)
                for env in envs if any(k[0] == env for k in shared)}  # fmt: skip
    raise PowerError("give the spread of scores: --from RUN, --from RUN --from RUN (paired by seed), or --sd POINTS")


def power_table(suite: Suite, delta: float, spreads: dict[str, Spread], alpha: float, power: float) -> str:
    rows, now = [], []
    for plan in suite.envs:
        spread = spreads.get(plan.env)
        if spread is None or not spread.known:
            why = "no episodes" if spread is None else f"unknown ({spread.n} episodes, " + (
                "fewer than 2)" if spread.n < 2 else "all scored alike: state --sd)")  # fmt: skip
            rows.append([plan.env, why, len(plan.tasks) * len(plan.seeds), "-", "-", "-"])
            continue
        planned = len(plan.tasks) * len(plan.seeds)
        needed = seeds_needed(spread.sd, delta, spread.paired, alpha, power)
        detectable = mde(spread.sd, planned, spread.paired, alpha, power)
        now.append(Spread(spread.sd, planned, spread.paired))
        rows.append([plan.env, f"{spread.sd:.1f}" + (" (paired)" if spread.paired else ""), planned,
                     "-" if math.isnan(detectable) else f"{detectable:.1f}", needed,
                     math.ceil(needed / len(plan.tasks))])  # fmt: skip
    overall = mde_of_mean_of_means(now, alpha, power) if len(now) == len(suite.envs) else float("nan")
    headers = ["env", "sd (points)", f"episodes in {suite.name}", "MDE now (points)", f"episodes for {delta:g} points",
               "seeds per task"]  # fmt: skip
    text = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    if not math.isnan(overall):
        text += f"\n\noverall (mean of envs) with the suite's episodes: MDE {overall:.1f} points"
    return text + (f"\n\n{power:.0%} power, {alpha} two-sided; paired: seeds shared by two runs, else two independent "
                   f"runs of that many episodes (runs.power)")  # fmt: skip
