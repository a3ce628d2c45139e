"""What both outer-loop tracks share: their state file, the meta-LLM endpoint, result rows."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from tabulate import tabulate

from harness.models.client import ChatClient
from harness.models.embedded import LlamaCppServer
from harness.report.compare import compare
from harness.runs.layout import RunDir, atomic_write_json, atomic_write_text, new_run_id, read_json
from harness.runs.scheduler import RunStopped
from harness.tracks.eval import EMBEDDED, EvalOptions, run_eval
from harness.tracks.meta import MetaModel

TRACK_FILE = "track.json"


class TrackError(RuntimeError):
    """A track that cannot start or resume."""


class TrackState:
    """track.json: the options, every finished iteration/trial, and the status (for resume)."""

    def __init__(self, root: Path, kind: str, options: dict[str, Any], resume: bool) -> None:
        self.root = root
        self.path = root / TRACK_FILE
        if self.path.exists():
            if not resume:
                raise TrackError(f"track {root.name} exists: add --resume to continue it, or choose another --run-id")
            self.data: dict[str, Any] = read_json(self.path)
            if self.data.get("kind") != kind:
                raise TrackError(f"{root} holds a {self.data.get('kind')} track, not a {kind} track")
        else:
            if resume:
                raise TrackError(f"cannot resume: {self.path} does not exist")
            root.mkdir(parents=True, exist_ok=True)
            self.data = {"kind": kind, "status": "running", "options": options, "rounds": [],
                         "created": datetime.datetime.now().isoformat(timespec="seconds")}  # fmt: skip
            self.save()

    @property
    def rounds(self) -> list[dict[str, Any]]:
        rounds: list[dict[str, Any]] = self.data["rounds"]
        return rounds

    def add_round(self, record: dict[str, Any]) -> None:
        self.rounds.append(record)
        self.save()

    def save(self) -> None:
        atomic_write_json(self.path, self.data)


def track_root(runs_dir: str, run_id: str | None, submission_name: str, kind: str, resume: bool) -> Path:
    if run_id:
        return Path(runs_dir) / run_id
    if resume:
        candidates = sorted(p.parent for p in Path(runs_dir).glob(f"*/{TRACK_FILE}")
                            if read_json(p).get("kind") == kind and read_json(p).get("status") != "complete"
                            and read_json(p)["options"].get("submission_name") == submission_name)  # fmt: skip
        if not candidates:
            raise TrackError(f"nothing to resume: no unfinished {kind} track of {submission_name} in {runs_dir}")
        return candidates[-1]
    return Path(runs_dir) / new_run_id(f"{kind}-track-{submission_name}")


@contextmanager
def meta_model(url: str, name: str | None, max_tokens: int) -> Iterator[MetaModel]:
    """The meta-LLM: a server given by URL, or the embedded model (valid, if weak)."""
    if url != EMBEDDED:
        yield MetaModel(ChatClient(url, name), max_tokens=max_tokens)
        return
    server = LlamaCppServer(alias="meta-" + "smollm2", n_ctx=8192)
    try:
        yield MetaModel(ChatClient(server.start(), kind="llamacpp"), max_tokens=min(max_tokens, 2048))
    finally:
        server.stop()


def evaluate(base: EvalOptions, submission: Path, runs_dir: Path, run_id: str, resume: bool, track: str,
             **changes: Any) -> tuple[RunDir, dict[str, Any]]:  # fmt: skip
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
    if not results["complete"]:  # a track never decides on a number that is not a result
        first = next(iter((results["failures"].get("first") or {}).items()), None)
        cause = f" (first {first[0]} error: {first[1]['error'][:500]})" if first else ""
        raise TrackError(f"the evaluation {run.root} is incomplete: {results['episodes_scored']} of "
                         f"{results['episodes_planned']} episodes scored{cause}; fix it and --resume")  # fmt: skip
    return run, results


def paired_comparison(baseline: RunDir, candidate: RunDir) -> dict[str, Any]:
    """`harness compare`'s paired per-seed delta (overall), as a track records it."""
    overall = compare(baseline, candidate).overall
    return {"delta_mean": overall["delta"], "delta_ci95": overall["ci95"], "pairs": overall["pairs"]}


def write_table(path: Path, title: str, headers: list[str], rows: list[list[Any]], note: str = "") -> None:
    text = f"# {title}\n\n" + tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True) + "\n"
    atomic_write_text(path, text + (f"\n{note}\n" if note else ""))


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
