"""`harness bench calibrate`: does our Crafter behave as its authors' at length?

`submissions/random` (a uniform random policy, no model) plays Crafter on N seeds with no step
cap below the game's own (10,000). For each of the 22 achievements, the share of our episodes
that unlocked it is tested against the rate the Crafter authors published for their random
agent (29,784 episodes; bench/data): an exact two-sided binomial test of our count against their
rate, Holm-adjusted over the 22 comparisons, at level ALPHA. The mean episode length is tested
the same way (a z-test of our mean against theirs, with our episodes' standard deviation).
A difference at the stated level means our game, its seeding or our random policy is not theirs.

Two known departures, stated, not hidden: BALROG's reset plays one Noop before the first
decision (counted in our episode length, as the game counts it), and our seeds are 0..N-1 where
the authors' runs drew theirs at random.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabulate import tabulate

from harness.bench.report import write_section
from harness.envs.gamelog import GAME_LOG_FILE
from harness.runs.read import read_run
from harness.tracks.eval import EvalOptions, run_eval

PUBLISHED = Path(__file__).parent / "data" / "crafter_random_published.json"
ALPHA = 0.01  # family-wise, over the 22 achievements (Holm)
CRAFTER_LENGTH = 10000  # the game's own episode length
RESET_NOOP = 1  # BALROG's reset plays one Noop: the game's steps are the policy's plus one


def published_crafter() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(PUBLISHED.read_text())
    return data


def binomial_two_sided_p(successes: int, trials: int, rate: float) -> float:
    """Exact two-sided p-value of `successes` in `trials` under `rate`: the probability of every
    outcome no more likely than the one observed."""
    if rate <= 0.0:
        return 1.0 if successes == 0 else 0.0
    if rate >= 1.0:
        return 1.0 if successes == trials else 0.0

    def log_pmf(k: int) -> float:
        return (math.lgamma(trials + 1) - math.lgamma(k + 1) - math.lgamma(trials - k + 1)
                + k * math.log(rate) + (trials - k) * math.log1p(-rate))  # fmt: skip

    observed = log_pmf(successes)
    total = sum(math.exp(log_pmf(k)) for k in range(trials + 1) if log_pmf(k) <= observed + 1e-9)
    return min(1.0, total)


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjustment: each p-value made comparable to the family-wise level."""
    ordered = sorted(p_values.items(), key=lambda item: item[1])
    adjusted, running = {}, 0.0
    for rank, (name, p) in enumerate(ordered):
        running = max(running, min(1.0, (len(ordered) - rank) * p))
        adjusted[name] = running
    return adjusted


def normal_two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


@dataclass
class Calibration:
    episodes: int
    rates: dict[str, tuple[float, float, float]]  # achievement -> (ours, theirs, Holm-adjusted p)
    length: tuple[float, float, float]  # (our mean, theirs, p)

    def differing(self) -> list[str]:
        """What differs from the published figures at level ALPHA."""
        names = [name for name, (_, _, p) in self.rates.items() if p < ALPHA]
        return names + (["episode length"] if self.length[2] < ALPHA else [])


def crafter_episodes(run_root: Path) -> list[tuple[set[str], int]]:
    """Each Crafter episode of a run: (achievements unlocked, steps), from the game's own log."""
    run = read_run(run_root)
    found = []
    for episode in run.episodes():
        unlocked: set[str] = set()
        steps = 0
        for line in (run.episode_folder(episode) / GAME_LOG_FILE).read_text().splitlines():
            event = json.loads(line)
            if event["event"] == "reset":
                unlocked, steps = set(), 0
            else:
                unlocked |= set(event.get("unlocked", []))
                steps += 1
        found.append((unlocked, steps))
    return found


def calibrate(episodes: list[tuple[set[str], int]], published: dict[str, Any]) -> Calibration:
    count = len(episodes)
    raw = {name: binomial_two_sided_p(sum(name in got for got, _ in episodes), count, rate)
           for name, rate in published["rates"].items()}  # fmt: skip
    adjusted = holm(raw)
    rates = {name: (sum(name in got for got, _ in episodes) / count, rate, adjusted[name])
             for name, rate in published["rates"].items()}  # fmt: skip
    lengths = [steps + RESET_NOOP for _, steps in episodes]
    mean = statistics.fmean(lengths)
    spread = statistics.stdev(lengths) if count > 1 else 0.0
    if spread > 0:
        p_length = normal_two_sided_p((mean - published["mean_length"]) / (spread / math.sqrt(count)))
    else:  # every episode equally long: only the published mean itself agrees
        p_length = 1.0 if math.isclose(mean, published["mean_length"]) else 0.0
    return Calibration(count, rates, (mean, float(published["mean_length"]), p_length))


def run_random_crafter(seeds: int, workers: int, folder: Path) -> Path:
    """submissions/random on Crafter seeds 0..seeds-1 at the game's own length; the run's folder."""
    suite = folder / "calibrate.yaml"
    suite.write_text(f"name: calibrate\nenvs:\n  crafter: {{tasks: [crafter], seeds: {list(range(seeds))}, "
                     f"max_steps: {CRAFTER_LENGTH}}}\n")  # fmt: skip
    run, _ = run_eval(EvalOptions(submission="submissions/random", suite=str(suite), model="none", workers=workers,
                                  runs_dir=str(folder / "runs"), run_id="random-crafter", show_progress=False))  # fmt: skip
    return run.root


def table(calibration: Calibration) -> str:
    rows = [[name, f"{ours:.4f}", f"{theirs:.4f}", f"{p:.3g}", "DIFFERS" if p < ALPHA else "same"]
            for name, (ours, theirs, p) in sorted(calibration.rates.items())]  # fmt: skip
    ours, theirs, p = calibration.length
    rows.append(["episode length (mean steps)", f"{ours:.1f}", f"{theirs:.1f}", f"{p:.3g}", "DIFFERS" if p < ALPHA else "same"])
    return tabulate(rows, headers=["achievement", f"ours ({calibration.episodes} episodes)", "published (29,784)",
                                   "p (Holm)", f"at {ALPHA}"], tablefmt="github")  # fmt: skip


def run_calibration(seeds: int = 500, workers: int = 2, write: bool = True) -> Calibration:
    with tempfile.TemporaryDirectory(prefix="harness-calibrate-") as scratch:
        calibration = calibrate(crafter_episodes(run_random_crafter(seeds, workers, Path(scratch))), published_crafter())
    text = table(calibration)
    verdict = calibration.differing()
    text += "\n\n" + (f"Differs at {ALPHA}: {', '.join(verdict)}" if verdict else
                      f"No achievement rate and not the episode length differs at the family-wise level {ALPHA}.")  # fmt: skip
    print(text)
    if write:
        note = ("`submissions/random` (uniform over the 17 actions, no model) on Crafter seeds 0.."
                f"{seeds - 1} at the game's own length (10,000 steps), against the Crafter authors' random agent "
                "(danijar/crafter scores/crafter_noreward-random.json: 5 runs, 29,784 episodes). Rates: the share of "
                "episodes that unlocked each achievement, from the game's own log; exact two-sided binomial test of "
                f"our count against their rate, Holm-adjusted over the 22 achievements, family-wise level {ALPHA}. "
                "Length: z-test of our mean against theirs with our standard deviation; our length counts BALROG's "
                "reset Noop, as the game does. MiniHack and NetHack: no published random-agent figures in BALROG's measure were found "
                "(the NLE and MiniHack papers report trained agents), so there is nothing to calibrate against.")  # fmt: skip
        write_section("calibrate", f"harness bench calibrate --seeds {seeds}", text + "\n\n" + note)
    return calibration
