"""The track records, typed and versioned like the run records (runs.records).

track.json holds one TrackRecord: the options, the seed split, the gate, every round (a
scaffold iteration or a memory trial) and, once finished, the held-out report. lineage.json
and trials.json are views of it. Every figure a track decides on is measured on its
*selection* seeds; the figures it publishes are measured again on *report* seeds that no
decision ever saw.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness.runs.records import SCHEMA_VERSION, Record, Results
from harness.runs.stats import mean_defined

Gate = Literal["mean", "ci"]
GATES: tuple[str, ...] = ("mean", "ci")


class Paired(Record):
    """A paired per-seed comparison (report.compare's overall): candidate minus baseline."""

    delta_mean: float
    delta_ci95: list[float]
    pairs: int
    mde: float | None = Field(None, description="the smallest overall gain these pairs detect at 80% power "
                                                "(runs.power); None when their spread is unknown")

    def power_note(self) -> str:
        """'' when the pairs can detect a gain of the size measured, else what they can detect."""
        if self.mde is None:
            return f"; {self.pairs} pairs: their spread is unknown, so what they can detect is not known"
        if abs(self.delta_mean) < self.mde:
            return (f"; {self.pairs} pairs detect {100 * self.mde:.1f} points at 80% power: too few seeds to "
                    f"detect a gain of this size (`harness power`)")  # fmt: skip
        return ""

    def power_flag(self) -> str:
        """power_note for a table cell."""
        if self.mde is None:
            return " (MDE unknown)"
        return f" (MDE {100 * self.mde:.1f}: too few seeds)" if abs(self.delta_mean) < self.mde else ""


class RunFigures(Record):
    """One evaluation's headline figures, as a track records them, with the run they come from."""

    run: str
    progression: float | None
    progression_by_env: dict[str, float | None] = Field(default_factory=dict)
    growth_chars_per_step: float | None = None
    write_to_search_ratio: float | None = None
    consult_before_write: float | None = None

    @classmethod
    def of(cls, run: str, results: Results) -> RunFigures:
        envs = results.envs.values()
        return cls(run=run, progression=results.overall.progression_mean,
                   progression_by_env={env: s.progression_mean for env, s in results.envs.items()},
                   growth_chars_per_step=mean_defined(s.growth_chars_per_step for s in envs),
                   write_to_search_ratio=mean_defined(s.write_to_search_ratio for s in envs),
                   consult_before_write=mean_defined(s.consult_before_write for s in envs))  # fmt: skip


class SeedSplit(Record):
    """selection: where the gate and the best round are decided; report: where the published
    gain is measured (never used for a decision); train: the memory track's trace pool."""

    selection: list[int]
    report: list[int]
    train: list[int] = Field(default_factory=list)


class HeldOutReport(Record):
    """The published figures: the starting point and the chosen round, on the report seeds."""

    best_round: int | None
    baseline: RunFigures
    best: RunFigures
    comparison: Paired | None  # None when the chosen round is the starting point itself


class ScaffoldRound(Record):
    iteration: int
    kept: bool
    reason: str
    diagnosis: str = ""
    candidate: str
    selection: RunFigures | None = None  # None: the candidate never played (failed its checks)
    comparison: Paired | None = None  # against the best scaffold so far, on the selection seeds


class MemoryTrial(Record):
    trial: int
    decision: dict[str, Any]
    data: dict[str, Any]
    skipped: str | None = None
    training: dict[str, Any] | None = None
    adapter: str | None = None
    selection: RunFigures | None = None
    comparison: Paired | None = None  # against no adapter, on the selection seeds
    passed_gate: bool = False
    reason: str = ""


class TrackRecord(Record):
    schema_version: str = SCHEMA_VERSION
    kind: Literal["scaffold", "memory"]
    status: Literal["running", "complete"] = "running"
    created: str
    options: dict[str, Any]
    seeds: SeedSplit
    gate: Gate = "mean"
    report: HeldOutReport | None = None
    best_round: int | None = None
    rounds: list[Any] = Field(default_factory=list)


class ScaffoldTrackRecord(TrackRecord):
    kind: Literal["scaffold"] = "scaffold"
    candidates: str | None = Field(None, description="how the meta-LLM's candidates ran: 'docker (sandboxed)' or "
                                   "an unsandboxed runtime the user allowed (None: recorded before this was)")  # fmt: skip
    rounds: list[ScaffoldRound] = Field(default_factory=list)


class MemoryTrackRecord(TrackRecord):
    kind: Literal["memory"] = "memory"
    baseline: RunFigures | None = None  # no adapter, on the selection seeds
    rounds: list[MemoryTrial] = Field(default_factory=list)


TRACK_RECORD_MODELS: dict[str, type[Record]] = {"scaffold-track": ScaffoldTrackRecord, "memory-track": MemoryTrackRecord}


def gate_verdict(gate: str, candidate: float | None, incumbent: float | None, comparison: Paired | None) -> tuple[bool, str]:
    """Does the candidate replace the incumbent? `mean`: its mean progression on the selection
    seeds is higher (the paper's rule). `ci`: the paired 95% interval of the per-seed gain lies
    above zero (needs at least two paired seeds)."""
    score, best = candidate or 0.0, incumbent or 0.0
    note = comparison.power_note() if comparison is not None else ""
    if gate == "mean":
        if score > best:
            return True, f"kept: {100 * score:.1f}% > {100 * best:.1f}% (selection seeds){note}"
        return False, f"rejected: {100 * score:.1f}% does not beat {100 * best:.1f}% (selection seeds){note}"
    if comparison is None or comparison.pairs < 2:
        return False, "rejected: the ci gate needs at least two paired selection seeds"
    low = comparison.delta_ci95[0]
    if low > 0:
        return True, f"kept: paired gain {100 * comparison.delta_mean:+.1f}, 95% CI lower bound {100 * low:+.1f} > 0{note}"
    return False, f"rejected: paired gain {100 * comparison.delta_mean:+.1f}, 95% CI lower bound {100 * low:+.1f} <= 0{note}"
