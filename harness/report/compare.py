"""`harness compare BASELINE CANDIDATE`: a paired comparison on the seeds both runs share.

Pairs are episodes with the same env, task and seed. Runs whose step caps, tasks, text
variants (what the model read) or harness versions differ are refused (the comparison would not be fair), with the reason. The delta
per env and overall (unweighted mean of envs) comes with a bootstrap 95% interval and the
minimal detectable difference of these pairs at 80% power (runs.power); the candidate is
significantly worse when the interval lies wholly below -min_delta.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tabulate import tabulate

from harness.runs.jobs import is_scored
from harness.runs.layout import RunDir
from harness.runs.power import ALPHA, POWER, Spread, mde_of_mean_of_means
from harness.runs.read import Run, read_run
from harness.runs.stats import mean_ci95, mean_of_group_means_ci95


class CompareError(ValueError):
    """Two runs that cannot be compared fairly."""


@dataclass
class Comparison:
    baseline: str
    candidate: str
    envs: dict[str, dict[str, Any]] = field(default_factory=dict)
    overall: dict[str, Any] = field(default_factory=dict)
    verdict: str = "no significant difference"  # or "worse" / "better"

    def table(self) -> str:
        rows = [[env, d["pairs"], f"{100 * d['baseline']:.1f}", f"{100 * d['candidate']:.1f}",
                 f"{100 * d['delta']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]", _points(d["mde"])]
                for env, d in self.envs.items()]  # fmt: skip
        o = self.overall
        rows.append(["overall", o["pairs"], f"{100 * o['baseline']:.1f}", f"{100 * o['candidate']:.1f}",
                     f"{100 * o['delta']:+.1f} [{100 * o['ci95'][0]:+.1f}, {100 * o['ci95'][1]:+.1f}]", _points(o["mde"])])  # fmt: skip
        headers = ["env", "paired episodes", "baseline %", "candidate %", "delta % [95% CI]",
                   f"MDE % ({POWER:.0%} power, {ALPHA} two-sided)"]  # fmt: skip
        text = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True) + f"\n\nverdict: {self.verdict}"
        if self.verdict == "no significant difference" and not math.isnan(o["mde"]) and abs(o["delta"]) < o["mde"]:
            text += (f" (these {o['pairs']} pairs detect an overall difference of {100 * o['mde']:.1f} points at "
                     f"{POWER:.0%} power; a smaller one may be there unseen: `harness power` says how many seeds)")  # fmt: skip
        return text


def _points(fraction: float) -> str:
    return "-" if math.isnan(fraction) else f"{100 * fraction:.1f}"


def _base_version(version: str) -> str:
    """'0.1.0+abc123' -> '0.1' (commits within a minor version score alike)."""
    return ".".join(version.split("+")[0].split(".")[:2])


def _scored(run: Run) -> dict[tuple[str, str, int], float]:
    return {(e.env, e.task, e.seed): e.progression for e in run.episodes() if is_scored(e)}


def _check_comparable(runs: dict[str, Run], allow_incomplete: bool) -> None:
    """Refuse what would not be a fair pairing: incomplete runs, other harness versions,
    other planned episodes, other step caps."""
    if not allow_incomplete:
        for name, run in runs.items():
            results = run.results
            if results is None or not results.complete:
                scored = f"{results.episodes_scored} of {results.episodes_planned}" if results else "no"
                raise CompareError(f"the {name} run {run.root} is not complete ({scored} episodes scored): "
                                   "its numbers are not a result")  # fmt: skip
    base, cand = runs["baseline"].record, runs["candidate"].record
    if _base_version(base.harness_version) != _base_version(cand.harness_version):
        raise CompareError(f"harness versions differ ({base.harness_version} vs {cand.harness_version}): "
                           "scores may not be comparable; rerun the baseline")  # fmt: skip
    base_keys, cand_keys = set(base.suite.episode_keys()), set(cand.suite.episode_keys())
    if base_keys != cand_keys:
        raise CompareError(f"the runs planned different episodes (suites {base.suite.name} and {cand.suite.name}): "
                           f"only the baseline has {sorted(base_keys - cand_keys)[:5] or 'none'}, "
                           f"only the candidate {sorted(cand_keys - base_keys)[:5] or 'none'}")  # fmt: skip
    texts = (base.suite.text, cand.suite.text)
    if texts[0] != texts[1]:
        shown = [t.model_dump() if t else "the text from before variants were recorded" for t in texts]
        raise CompareError(f"the models read different text (observation and instructions variants): "
                           f"baseline {shown[0]}, candidate {shown[1]}")  # fmt: skip
    for env in set(base.suite.envs) & set(cand.suite.envs):
        caps = base.suite.envs[env].max_steps, cand.suite.envs[env].max_steps
        if caps[0] != caps[1]:
            raise CompareError(f"{env}: step caps differ ({caps[0]} vs {caps[1]})")


def compare(baseline: RunDir, candidate: RunDir, min_delta: float = 0.0, allow_incomplete: bool = False) -> Comparison:
    runs = {"baseline": read_run(baseline.root), "candidate": read_run(candidate.root)}
    _check_comparable(runs, allow_incomplete)
    base_scores, cand_scores = _scored(runs["baseline"]), _scored(runs["candidate"])
    shared = sorted(set(base_scores) & set(cand_scores))
    if not shared:
        raise CompareError("the runs share no episode (env, task, seed): nothing to pair")
    result = Comparison(baseline.run_id, candidate.run_id)
    groups: list[list[float]] = []
    spreads: list[Spread] = []
    for env in sorted({key[0] for key in shared}):
        keys = [key for key in shared if key[0] == env]
        deltas = [cand_scores[k] - base_scores[k] for k in keys]
        mean, low, high = mean_ci95(deltas)
        groups.append(deltas)
        spreads.append(Spread.of(deltas, paired=True))
        result.envs[env] = {"pairs": len(keys), "delta": mean, "ci95": [low, high], "mde": spreads[-1].mde() if spreads[-1].known else math.nan,
                            "baseline": sum(base_scores[k] for k in keys) / len(keys),
                            "candidate": sum(cand_scores[k] for k in keys) / len(keys)}  # fmt: skip
    mean, low, high = mean_of_group_means_ci95(groups)
    envs = result.envs.values()
    result.overall = {"pairs": len(shared), "delta": mean, "ci95": [low, high], "mde": mde_of_mean_of_means(spreads) if all(x.known for x in spreads) else math.nan,
                      "baseline": sum(e["baseline"] for e in envs) / len(result.envs),
                      "candidate": sum(e["candidate"] for e in envs) / len(result.envs)}  # fmt: skip
    if high < -min_delta:
        result.verdict = "worse"
    elif low > min_delta:
        result.verdict = "better"
    return result
