"""Track `scaffold` (AUTOMEM outer loop 1): a meta-LLM reviews traces and rewrites the scaffold.

Iteration 0 evaluates the submission. Each later iteration gives the meta-LLM the current
best scaffold's code, its run condensed to a budget (see digest.py) and the history of
earlier candidates; the reply (a diagnosis and the complete new files) becomes a candidate
that must load, follow the Scaffold API and survive a smoke episode (failures go back to the
meta-LLM for a bounded number of repairs). A checked candidate plays the same seeds and is
kept only if mean progression improves. Candidate code runs like any submission, never in the
harness, and in containers unless the user allows otherwise (see sandbox.py).
"""

from __future__ import annotations

import difflib
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from harness.agent.submission import SubmissionError, check_submission, read_submission
from harness.models.client import ModelRequestError
from harness.models.keys import DEFAULT_API_KEY_ENV
from harness.report.tables import number, percent
from harness.runs.layout import RunDir, atomic_write_json, atomic_write_text
from harness.runs.read import read_run
from harness.runs.records import Results
from harness.runs.suites import Suite
from harness.runtime import is_sandboxed
from harness.tracks.common import (
    TrackState,
    UnverifiedEvaluation,
    delta_text,
    evaluate,
    held_out_report,
    meta_model,
    now,
    paired_comparison,
    publish_row,
    split_seeds,
    table_name,
    track_root,
    write_table,
)
from harness.tracks.digest import digest_run
from harness.tracks.eval import EvalOptions
from harness.tracks.meta import CHARS_PER_TOKEN, MetaModel, MetaReplyError, clip, parse_candidate
from harness.tracks.records import (
    Gate,
    RunFigures,
    ScaffoldRound,
    ScaffoldTrackRecord,
    gate_verdict,
)
from harness.tracks.sandbox import candidate_runtime

SYSTEM_PROMPT = """You improve the scaffold of an LLM agent that plays long-horizon text games and
keeps its memory as files. You act as a code reviewer: find where the scaffold caused failures
(stalls, repeated actions, invalid actions, unbounded or useless memory files, memory never
consulted) and rewrite it so that mean progression on the same seeds improves.

The scaffold API (Python): `from harness.agent import Scaffold, Step`; the class keeps its name
and subclasses Scaffold; `reset(self, task)` gets task.env, task.name, task.instructions,
task.actions; `step(self, step) -> str` returns one of step.actions and sees step.index,
step.observation, step.last_action, step.last_reward, step.feedback. Memory: self.memory.list(dir=""),
read(path), search(pattern, path=""), append(path, text), create(path, text), write(path, text),
delete(path) on relative paths. Model: self.chat(messages, routine=NAME, max_tokens=...,
choices=[...], tools=[...], tool_choice=..., parallel_tool_calls=...) returns a Reply: a str with
.tool_calls (OpenAI format) and .finish_reason. Routine names are yours ("log" for recording,
"recall" for consulting, "reflect", ...); "act" is the world action. Memory as the model's own
actions: tools=self.memory.tools("append", "search", ..., max_text_chars=N) offers them,
self.memory.call_tool(call) carries out one tool call and returns the "tool" message to append
after the assistant message {"role": "assistant", "content": reply or None, "tool_calls": reply.tool_calls};
bad calls come back as errors, never raised. With choices after tool turns, pass the same tools
and tool_choice="none". Only the standard library is available besides the harness.

Reply with exactly:
DIAGNOSIS: <one line: the main failure you fix>
<a short explanation>
then every file of the new scaffold, each as:
FILE: <relative path>
```python
<complete file content>
```"""


@dataclass
class ScaffoldTrackOptions:
    eval: EvalOptions
    meta_model: str = "embedded"
    meta_model_name: str | None = None
    meta_api_key_env: str | None = DEFAULT_API_KEY_ENV  # the variable holding the meta server's key
    iterations: int = 3
    patience: int = 2
    repairs: int = 2
    meta_context_tokens: int = 6000
    meta_max_tokens: int = 4096
    smoke_steps: int = 3
    leaderboards_dir: str | None = "leaderboards"
    selection_seeds: str = "+500"  # where candidates are judged; --seeds (or the suite's) is where gains are reported
    gate: Gate = "mean"
    runtime: str | None = None  # asked for; None: docker when an engine answers (the eval options' runtime is set from it)
    allow_unsandboxed: bool = False  # let candidates run as local processes (or on ray)


def scaffold_files(directory: Path) -> dict[str, str]:
    """The code files of a submission (Python sources), by relative path."""
    return {p.relative_to(directory).as_posix(): p.read_text() for p in sorted(directory.rglob("*.py"))
            if "__pycache__" not in p.parts}  # fmt: skip


def make_candidate(parent: Path, target: Path, files: dict[str, str], name: str, diagnosis: str) -> str:
    """Write the candidate folder (parent's files + the new ones); returns the diff to the parent."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(parent, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    before = scaffold_files(parent)
    for relative, content in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    config = yaml.safe_load((parent / "submission.yaml").read_text())
    config.update({"name": name, "parent": read_submission(parent).name, "description": diagnosis or config.get("description")})
    (target / "submission.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    after = scaffold_files(target)
    return "".join(
        "".join(difflib.unified_diff(before.get(f, "").splitlines(True), after.get(f, "").splitlines(True),
                                     f"a/{f}", f"b/{f}"))  # fmt: skip
        for f in sorted(set(before) | set(after))
    )


def _history_text(rounds: list[ScaffoldRound]) -> str:
    if not rounds:
        return "(none yet)"
    lines = []
    for r in rounds:
        score = percent(r.selection.progression) + "%" if r.selection else "-"
        lines.append(f"- iteration {r.iteration}: {'KEPT' if r.kept else 'rejected'}, progression {score}; "
                     f"{r.reason}; diagnosis: {r.diagnosis}")  # fmt: skip
    return "\n".join(lines)


def build_prompt(code: dict[str, str], run: RunDir, rounds: list[ScaffoldRound], budget_tokens: int) -> list[dict[str, str]]:
    """The meta-LLM's messages, within `budget_tokens` (code whole; history, then traces fill the rest)."""
    budget = budget_tokens * CHARS_PER_TOKEN - len(SYSTEM_PROMPT)
    code_text = "\n\n".join(f"FILE: {name}\n```python\n{text}```" for name, text in code.items())
    history = clip(_history_text(rounds), max(400, budget // 6))
    traces = digest_run(run, max(1000, budget - len(code_text) - len(history) - 400))
    user = (f"## Current scaffold\n{code_text}\n\n## Earlier candidates\n{history}\n\n"
            f"## Traces of the current scaffold's run (condensed)\n{traces}\n\n"
            "Rewrite the scaffold to raise mean progression. Reply in the required format.")  # fmt: skip
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def _smoke_check(candidate: Path, options: ScaffoldTrackOptions, selection: Suite, folder: Path, attempt: int) -> str | None:
    """None if the candidate loads and plays a short episode (on a selection seed); else what went wrong."""
    try:
        check_submission(candidate, sandboxed=is_sandboxed(options.eval.runtime))
    except SubmissionError as error:
        return str(error)
    plan = selection.envs[0]
    smoke = Path(folder) / "smoke.yaml"
    smoke.write_text(f"name: smoke-check\nenvs:\n  {plan.env}: {{tasks: [{plan.tasks[0]}], seeds: [{plan.seeds[0]}], "
                     f"max_steps: {options.smoke_steps}}}\n")  # fmt: skip
    try:
        run, _ = evaluate(options.eval, candidate, folder / "smoke", f"attempt-{attempt}", resume=False, track="scaffold-check",
                          suite=str(smoke), env=(), seeds=None, max_steps=None, show_progress=False)  # fmt: skip
    except UnverifiedEvaluation as failed:  # a failure of the candidate's, which a repair may mend
        return str(failed)
    episode = read_run(run.root).episodes()[0]
    if episode.status == "errored":
        return f"the smoke episode failed ({episode.error_kind}): {clip(str(episode.error), 1500)}"
    return None


def _propose(meta: MetaModel, messages: list[dict[str, str]], parent: Path, folder: Path, name: str,
             options: ScaffoldTrackOptions, selection: Suite, log: list[dict[str, Any]]) -> tuple[Path | None, str, str]:  # fmt: skip
    """Ask, check, repair: (candidate folder or None, diagnosis, reason)."""
    diagnosis, failure = "", "no reply"
    asked = messages
    for attempt in range(options.repairs + 1):
        try:
            reply = meta.ask(asked)
        except ModelRequestError as error:  # e.g. a prompt over the meta server's context: this candidate is lost, not the track
            failure = f"the meta-LLM server refused the request: {clip(str(error), 300)}"
            break
        log.append(meta.calls[-1].to_json())
        atomic_write_json(folder / "meta.json", log)
        try:
            diagnosis, files = parse_candidate(reply, read_submission(parent).scaffold_file)
            candidate = folder / "candidate"
            diff = make_candidate(parent, candidate, files, name, diagnosis)
            atomic_write_text(folder / "diff.patch", diff)
            failure = _smoke_check(candidate, options, selection, folder, attempt) or ""
        except MetaReplyError as error:
            failure = f"unusable reply: {error}"
        if not failure:
            return candidate, diagnosis, "passed checks"
        asked = repair_messages(messages, reply, failure, options.meta_context_tokens)
    return None, diagnosis, f"rejected after {attempt + 1} attempts: {clip(failure, 300)}"


def repair_messages(messages: list[dict[str, str]], reply: str, failure: str, budget_tokens: int) -> list[dict[str, str]]:
    """The request for a corrected candidate, within the first prompt's budget: the first prompt
    and the failed reply, each clipped to a third, then the failure (never a growing history)."""
    share = budget_tokens * CHARS_PER_TOKEN // 3
    return [messages[0], {"role": "user", "content": clip(messages[1]["content"], share)},
            {"role": "assistant", "content": clip(reply, share)},
            {"role": "user", "content": f"The candidate failed its check: {clip(failure, 1500)}\n"
                                        "Reply again in the required format with every file, corrected."}]  # fmt: skip


def run_scaffold_track(options: ScaffoldTrackOptions, run_id: str | None = None, resume: bool = False) -> Path:
    """Run (or resume) the track; returns its folder."""
    where = candidate_runtime(options.runtime, options.allow_unsandboxed)
    options = replace(options, eval=replace(options.eval, runtime=where.runtime))
    root_submission = check_submission(options.eval.submission, sandboxed=where.sandboxed)
    root = track_root(options.eval.runs_dir, run_id, root_submission.name, "scaffold", resume)
    selection, _, split = split_seeds(options.eval, options.selection_seeds)
    fresh = ScaffoldTrackRecord(created=now(), seeds=split, gate=options.gate, candidates=where.isolation, options={
        "submission": str(root_submission.directory), "submission_name": root_submission.name,
        "suite": options.eval.suite, "iterations": options.iterations, "runtime": where.runtime})  # fmt: skip
    state = TrackState(root, fresh, resume)
    rounds = state.record.rounds

    def on_selection_seeds(submission: Path, folder: Path) -> tuple[RunDir, Results]:
        return evaluate(options.eval, submission, folder, "run", resume, "scaffold", seeds=options.selection_seeds)

    if not rounds:
        run, results = on_selection_seeds(root_submission.directory, root / "iterations" / "0")
        state.add_round(ScaffoldRound(iteration=0, kept=True, reason="the submission itself",
                                      candidate=str(root_submission.directory), selection=RunFigures.of(str(run.root), results)))  # fmt: skip
    with meta_model(options.meta_model, options.meta_model_name, options.meta_max_tokens, options.meta_api_key_env) as meta:
        while len(rounds) <= options.iterations:
            best = _best(rounds)
            recent = [r.kept for r in rounds[1:]][-options.patience:]
            if options.patience and len(recent) == options.patience and not any(recent):
                break
            iteration = len(rounds)
            folder = root / "iterations" / str(iteration)
            shutil.rmtree(folder, ignore_errors=True)  # an iteration cut short is redone whole
            folder.mkdir(parents=True)
            assert best.selection is not None  # a kept round was played
            parent, best_run = Path(best.candidate), RunDir(Path(best.selection.run))
            messages = build_prompt(scaffold_files(parent), best_run, rounds, options.meta_context_tokens)
            name = f"{root_submission.name}-it{iteration}"
            candidate, diagnosis, reason = _propose(meta, messages, parent, folder, name, options, selection, [])
            if candidate is None:
                state.add_round(ScaffoldRound(iteration=iteration, kept=False, reason=reason, diagnosis=diagnosis,
                                              candidate=str(folder / "candidate")))  # fmt: skip
                continue
            try:
                run, results = on_selection_seeds(candidate, folder)
            except UnverifiedEvaluation as failed:  # e.g. code that decides differently when played again
                state.add_round(ScaffoldRound(iteration=iteration, kept=False, reason=f"not kept: {failed}",
                                              diagnosis=diagnosis, candidate=str(candidate)))  # fmt: skip
                continue
            comparison = paired_comparison(best_run, run)
            kept, reason = gate_verdict(options.gate, results.overall.progression_mean, best.selection.progression, comparison)
            state.add_round(ScaffoldRound(iteration=iteration, kept=kept, reason=reason, diagnosis=diagnosis,
                                          candidate=str(candidate), selection=RunFigures.of(str(run.root), results),
                                          comparison=comparison))  # fmt: skip
    _report(state, root, options, resume)
    _finish(state, root, options)
    return root


def _best(rounds: list[ScaffoldRound]) -> ScaffoldRound:
    return max((r for r in rounds if r.kept), key=lambda r: r.iteration)


def _report(state: TrackState[ScaffoldTrackRecord], root: Path, options: ScaffoldTrackOptions, resume: bool) -> None:
    """The published figures: the submission and the chosen scaffold on the report seeds."""
    rounds = state.record.rounds
    best = _best(rounds)
    state.record.report = held_out_report(options.eval, root, resume, "scaffold-report", (Path(rounds[0].candidate), {}),
                                          (Path(best.candidate), {}) if best.iteration != 0 else None, best.iteration)  # fmt: skip
    state.save()


LINEAGE_HEADERS = ["iteration", "kept", "crafter %", "minihack %", "nethack %", "selection %",
                   "delta vs best so far [95% CI]", "report %", "memory growth chars/step", "write/search", "why", "diagnosis"]  # fmt: skip


def _finish(state: TrackState[ScaffoldTrackRecord], root: Path, options: ScaffoldTrackOptions) -> None:
    record, report = state.record, state.record.report
    assert report is not None
    reported = {0: report.baseline.progression, report.best_round: report.best.progression}
    rows = []
    for r in record.rounds:
        figures = r.selection
        by_env = figures.progression_by_env if figures else {}
        rows.append([r.iteration, "yes" if r.kept else "no", *(percent(by_env.get(e)) for e in ("crafter", "minihack", "nethack")),
                     percent(figures.progression if figures else None), delta_text(r.comparison),
                     percent(reported[r.iteration]) if r.iteration in reported else "-",
                     number(figures.growth_chars_per_step if figures else None, 1),
                     number(figures.write_to_search_ratio if figures else None),
                     clip(r.reason, 100).replace("\n", " "), clip(r.diagnosis or "-", 100).replace("\n", " ")])  # fmt: skip
    note = (f"Selection seeds {record.seeds.selection} decide (gate: {record.gate}); report seeds "
            f"{record.seeds.report} were used for nothing else. Published gain (report seeds, paired): "
            f"{delta_text(report.comparison) if report.comparison else 'none (no candidate was kept)'}.")  # fmt: skip
    write_table(root / "lineage.md", f"Scaffold track {root.name}", LINEAGE_HEADERS, rows, note)
    atomic_write_json(root / "lineage.json", {"seeds": record.seeds.model_dump(), "gate": record.gate,
                                              "rounds": [r.model_dump(mode="json") for r in record.rounds],
                                              "report": report.model_dump(mode="json")})  # fmt: skip
    best = _best(record.rounds)
    best_folder = root / "best"
    if best_folder.exists():
        shutil.rmtree(best_folder)
    shutil.copytree(best.candidate, best_folder, ignore=shutil.ignore_patterns("__pycache__"))
    record.status, record.best_round = "complete", best.iteration
    state.save()
    start_selection = record.rounds[0].selection
    publish_row(options.leaderboards_dir, table_name("scaffold", options.eval), {
        "track": root.name, "submission": record.options["submission_name"], "gate": record.gate,
        "iterations": len(record.rounds) - 1, "best iteration": best.iteration,
        "selection start -> best %": f"{percent(start_selection.progression if start_selection else None)} -> "
                                     f"{percent(best.selection.progression if best.selection else None)}",
        "report start %": percent(report.baseline.progression), "report best %": percent(report.best.progression),
        "report gain [95% CI]": delta_text(report.comparison) if report.comparison else "+0.0 (start kept)",
        "candidates ran": record.candidates or "local, unsandboxed (recorded before this was)",
    }, SCAFFOLD_ROW_HEADERS)  # fmt: skip


SCAFFOLD_ROW_HEADERS = ["track", "submission", "gate", "iterations", "best iteration", "selection start -> best %",
                        "report start %", "report best %", "report gain [95% CI]", "candidates ran"]  # fmt: skip
