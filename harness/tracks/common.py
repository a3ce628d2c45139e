"""What both outer-loop tracks share: their state file, the meta-LLM endpoint, result rows."""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from tabulate import tabulate

from harness.models.client import ChatClient
from harness.models.embedded import LlamaCppServer
from harness.models.keys import api_key
from harness.report.compare import compare
from harness.report.verify import verify_run
from harness.runs.layout import RunDir, atomic_write_json, atomic_write_text, new_run_id
from harness.runs.read import RecordError, read_record
from harness.runs.records import Results
from harness.runs.scheduler import RunStopped
from harness.runs.suites import Suite, load_suite, narrow, seed_sets, with_seeds, with_text
from harness.tracks.eval import EMBEDDED, EvalOptions, run_eval
from harness.tracks.meta import MetaModel
from harness.tracks.records import HeldOutReport, Paired, RunFigures, SeedSplit, TrackRecord

TRACK_FILE = "track.json"


class TrackError(RuntimeError):
    """A track that cannot start or resume."""


T = TypeVar("T", bound=TrackRecord)


class TrackState(Generic[T]):
    """track.json: one typed TrackRecord, saved after every finished round (for resume)."""

    def __init__(self, root: Path, fresh: T, resume: bool) -> None:
        self.root = root
        self.path = root / TRACK_FILE
        if self.path.exists():
            if not resume:
                raise TrackError(f"track {root.name} exists: add --resume to continue it, or choose another --run-id")
            try:
                self.record: T = read_record(type(fresh), self.path)
            except RecordError as error:
                raise TrackError(f"cannot resume {root}: {error}") from None
            changed = [f"{key}: recorded {getattr(self.record, key)}, now {getattr(fresh, key)}"
                       for key in ("options", "seeds", "gate") if getattr(self.record, key) != getattr(fresh, key)]  # fmt: skip
            if changed:
                raise TrackError(f"cannot resume {root}: it was started with other settings:\n  " + "\n  ".join(changed))
        else:
            if resume:
                raise TrackError(f"cannot resume: {self.path} does not exist")
            root.mkdir(parents=True, exist_ok=True)
            self.record = fresh
            self.save()

    def add_round(self, record: Any) -> None:
        self.record.rounds.append(record)
        self.save()

    def save(self) -> None:
        atomic_write_json(self.path, self.record.model_dump(mode="json"))


def now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def track_root(runs_dir: str, run_id: str | None, submission_name: str, kind: str, resume: bool) -> Path:
    if run_id:
        return Path(runs_dir) / run_id
    if resume:
        candidates = []
        for path in sorted(Path(runs_dir).glob(f"*/{TRACK_FILE}")):
            try:
                record = read_record(TrackRecord, path)
            except RecordError:
                continue  # not a track this harness can resume
            if record.kind == kind and record.status != "complete" and record.options.get("submission_name") == submission_name:
                candidates.append(path.parent)
        if not candidates:
            raise TrackError(f"nothing to resume: no unfinished {kind} track of {submission_name} in {runs_dir}")
        return candidates[-1]
    return Path(runs_dir) / new_run_id(f"{kind}-track-{submission_name}")


def split_seeds(base: EvalOptions, selection: str, train: str | None = None) -> tuple[Suite, Suite, SeedSplit]:
    """(selection suite, report suite, the split): report = the evaluation's seeds (--seeds or the
    suite's), selection = `selection` (default: each env's report seeds + 500); every env's
    selection, report and training seeds must be pairwise disjoint."""
    planned = with_text(narrow(load_suite(base.suite), tuple(base.env), None, base.max_steps),
                        base.observation, base.instructions)  # fmt: skip
    report, chosen = with_seeds(planned, base.seeds), with_seeds(planned, selection)
    sets = {"report": seed_sets(report), "selection": seed_sets(chosen)}
    if train is not None:
        sets["training"] = seed_sets(with_seeds(planned, train))
    names = list(sets)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            for env in sets[first]:
                shared = sets[first][env] & sets[second].get(env, set())
                if shared:
                    raise TrackError(f"{env}: {first} and {second} seeds share {sorted(shared)}: a published gain must "
                                     "come from seeds no decision or training used")  # fmt: skip
    union = {name: sorted(set().union(*by_env.values())) for name, by_env in sets.items()}
    return chosen, report, SeedSplit(selection=union["selection"], report=union["report"], train=union.get("training", []))


@contextmanager
def meta_model(url: str, name: str | None, max_tokens: int, api_key_env: str | None = None) -> Iterator[MetaModel]:
    """The meta-LLM: a server given by URL (with the key in `api_key_env`, if set), or the
    embedded model (valid, if weak)."""
    if url != EMBEDDED:
        yield MetaModel(ChatClient(url, name, api_key=api_key(api_key_env)), max_tokens=max_tokens)
        return
    server = LlamaCppServer(alias="meta-" + "smollm2", n_ctx=8192)
    try:
        yield MetaModel(ChatClient(server.start(), kind="llamacpp"), max_tokens=min(max_tokens, 2048))
    finally:
        server.stop()


def evaluate(base: EvalOptions, submission: Path, runs_dir: Path, run_id: str, resume: bool, track: str,
             **changes: Any) -> tuple[RunDir, Results]:  # fmt: skip
    """One evaluation inside a track folder (its run.json names the track); resumes a half-finished one."""
    exists = (runs_dir / run_id / "run.json").exists()
    options = replace(base, submission=str(submission), runs_dir=str(runs_dir), run_id=run_id,
                      resume=exists and resume, extra={**base.extra, "track": track}, **changes)  # fmt: skip
    if exists and not resume:
        raise TrackError(f"{runs_dir / run_id} exists; resume the track instead")
    try:
        run, results = run_eval(options)
    except RunStopped as stopped:
        raise TrackError(f"the evaluation {runs_dir / run_id} was stopped: {stopped.reason}; fix it and --resume") from None
    if not results.complete:  # a track never decides on a number that is not a result
        first = next(iter(results.failures.first.items()), None)
        cause = f" (first {first[0]} error: {first[1].error[:500]})" if first else ""
        raise TrackError(f"the evaluation {run.root} is incomplete: {results.episodes_scored} of "
                         f"{results.episodes_planned} episodes scored{cause}; fix it and --resume")  # fmt: skip
    verification = verify_run(run, submission=Path(submission))  # nor on one harness verify does not stand by
    if not verification.verified:
        shown = "; ".join(f"{m.episode} step {m.step}: {m.problem}" for m in verification.mismatches[:3])
        raise UnverifiedEvaluation(f"the evaluation {run.root} does not verify ({len(verification.mismatches)} "
                                   f"mismatches: {shown})")  # fmt: skip
    return run, results


class UnverifiedEvaluation(TrackError):
    """An evaluation whose run `harness verify` does not pass: a track never decides on it."""


def paired_comparison(baseline: RunDir, candidate: RunDir) -> Paired:
    """`harness compare`'s paired per-seed delta (overall), as a track records it."""
    overall = compare(baseline, candidate).overall
    return Paired(delta_mean=overall["delta"], delta_ci95=overall["ci95"], pairs=overall["pairs"],
                  mde=None if math.isnan(overall["mde"]) else overall["mde"])  # fmt: skip


def held_out_report(base: EvalOptions, root: Path, resume: bool, track: str, start: tuple[Path, dict[str, Any]],
                    best: tuple[Path, dict[str, Any]] | None, best_round: int | None, start_id: str = "start") -> HeldOutReport:  # fmt: skip
    """The published figures, on the report seeds: the starting point and (unless it is the
    start itself) the chosen round, evaluated once each under root/report/, paired per seed.
    `start`/`best` are a submission folder and the evaluation options that differ for it."""
    start_run, start_results = evaluate(base, start[0], root / "report", start_id, resume, track, **start[1])
    baseline = RunFigures.of(str(start_run.root), start_results)
    if best is None:
        return HeldOutReport(best_round=best_round, baseline=baseline, best=baseline, comparison=None)
    best_run, best_results = evaluate(base, best[0], root / "report", "best", resume, track, **best[1])
    return HeldOutReport(best_round=best_round, baseline=baseline, best=RunFigures.of(str(best_run.root), best_results),
                         comparison=paired_comparison(start_run, best_run))  # fmt: skip


def delta_text(comparison: Paired | None) -> str:
    if comparison is None:
        return "-"
    low, high = comparison.delta_ci95
    return f"{100 * comparison.delta_mean:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]{comparison.power_flag()}"


def write_table(path: Path, title: str, headers: list[str], rows: list[list[Any]], note: str = "") -> None:
    text = f"# {title}\n\n" + tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True) + "\n"
    atomic_write_text(path, text + (f"\n{note}\n" if note else ""))


def table_name(kind: str, options: EvalOptions) -> str:
    """The table a track's row goes to: one per track, suite and text variant, so that rows
    whose models read different text never share a table ('scaffold-smoke-observation-rich')."""
    variants = [f"{key}-{value}" for key, value in (("observation", options.observation),
                                                    ("instructions", options.instructions)) if value not in (None, "balrog")]  # fmt: skip
    return "-".join([kind, Path(options.suite).stem, *variants])


def publish_row(leaderboards_dir: str | None, name: str, row: dict[str, Any], headers: list[str]) -> None:
    """Add (or replace, by track id) this track's row in leaderboards/tracks/<name>.md."""
    if not leaderboards_dir:
        return
    folder = Path(leaderboards_dir) / "tracks"
    folder.mkdir(parents=True, exist_ok=True)
    rows_file = folder / f"{name}.jsonl"
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()] if rows_file.exists() else []
    rows = [r for r in rows if r.get("track") != row["track"]] + [row]
    atomic_write_text(rows_file, "".join(json.dumps(r) + "\n" for r in rows))
    write_table(folder / f"{name}.md", f"Track results: {name}", headers,
                [[r.get(h, "") for h in headers] for r in rows],
                "Regenerated from the .jsonl beside this file; each row names its track run.")  # fmt: skip
