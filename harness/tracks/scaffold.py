"""Track `scaffold` (AUTOMEM outer loop 1): a meta-LLM reviews traces and rewrites the scaffold.

Iteration 0 evaluates the submission. Each later iteration gives the meta-LLM the current
best scaffold's code, its run condensed to a budget (see digest.py) and the history of
earlier candidates; the reply (a diagnosis and the complete new files) becomes a candidate
that must load, follow the Scaffold API and survive a smoke episode (failures go back to the
meta-LLM for a bounded number of repairs). A checked candidate plays the same seeds and is
kept only if mean progression improves. Candidate code runs like any submission: in worker
processes, never in the harness.
"""

from __future__ import annotations

import difflib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.agent.submission import SubmissionError, check_submission, read_submission
from harness.report.tables import number, percent
from harness.runs.layout import RunDir, atomic_write_json, atomic_write_text
from harness.runs.stats import mean_defined
from harness.runs.suites import load_suite, narrow, parse_seeds
from harness.tracks.common import (
    TrackState,
    evaluate,
    meta_model,
    paired_comparison,
    publish_row,
    track_root,
    write_table,
)
from harness.tracks.digest import digest_run
from harness.tracks.eval import EvalOptions
from harness.tracks.meta import CHARS_PER_TOKEN, MetaModel, MetaReplyError, clip, parse_candidate

SYSTEM_PROMPT = """You improve the scaffold of an LLM agent that plays long-horizon text games and
keeps its memory as files. You act as a code reviewer: find where the scaffold caused failures
(stalls, repeated actions, invalid actions, unbounded or useless memory files, memory never
consulted) and rewrite it so that mean progression on the same seeds improves.

The scaffold API (Python): `from harness.agent import Scaffold, Step`; the class keeps its name
and subclasses Scaffold; `reset(self, task)` gets task.env, task.name, task.instructions,
task.actions; `step(self, step) -> str` returns one of step.actions and sees step.index,
step.observation, step.last_action, step.last_reward, step.feedback. Memory: self.memory.list(dir=""),
read(path), search(pattern, path=""), append(path, text), write(path, text), delete(path) on
relative paths. Model: self.chat(messages, routine="log"|"recall"|"act", max_tokens=...,
choices=[...]) returns text; use routine "log" for recording, "recall" for deciding what to
consult, "act" for the world action. Only the standard library is available besides the harness.

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
    iterations: int = 3
    patience: int = 2
    repairs: int = 2
    meta_context_tokens: int = 6000
    meta_max_tokens: int = 4096
    smoke_steps: int = 3
    leaderboards_dir: str | None = "leaderboards"


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


def _history_text(rounds: list[dict[str, Any]]) -> str:
    if not rounds:
        return "(none yet)"
    lines = []
    for r in rounds:
        score = "-" if r.get("progression") is None else f"{100 * r['progression']:.1f}%"
        lines.append(f"- iteration {r['iteration']}: {'KEPT' if r['kept'] else 'rejected'}, progression {score}; "
                     f"{r['reason']}; diagnosis: {r.get('diagnosis', '')}")  # fmt: skip
    return "\n".join(lines)


def build_prompt(code: dict[str, str], run: RunDir, rounds: list[dict[str, Any]], budget_tokens: int) -> list[dict[str, str]]:
    """The meta-LLM's messages, within `budget_tokens` (code whole; history, then traces fill the rest)."""
    budget = budget_tokens * CHARS_PER_TOKEN - len(SYSTEM_PROMPT)
    code_text = "\n\n".join(f"FILE: {name}\n```python\n{text}```" for name, text in code.items())
    history = clip(_history_text(rounds), max(400, budget // 6))
    traces = digest_run(run, max(1000, budget - len(code_text) - len(history) - 400))
    user = (f"## Current scaffold\n{code_text}\n\n## Earlier candidates\n{history}\n\n"
            f"## Traces of the current scaffold's run (condensed)\n{traces}\n\n"
            "Rewrite the scaffold to raise mean progression. Reply in the required format.")  # fmt: skip
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def _smoke_check(candidate: Path, options: ScaffoldTrackOptions, folder: Path, attempt: int) -> str | None:
    """None if the candidate loads and plays a short episode; else what went wrong."""
    try:
        check_submission(candidate)
    except SubmissionError as error:
        return str(error)
    suite = load_suite(options.eval.suite)
    seeds = parse_seeds(options.eval.seeds) if options.eval.seeds else None
    plan = narrow(suite, tuple(options.eval.env), seeds).envs[0]
    smoke = Path(folder) / "smoke.yaml"
    smoke.write_text(f"name: smoke-check\nenvs:\n  {plan.env}: {{tasks: [{plan.tasks[0]}], seeds: [{plan.seeds[0]}], "
                     f"max_steps: {options.smoke_steps}}}\n")  # fmt: skip
    _, results = evaluate(options.eval, candidate, folder / "smoke", f"attempt-{attempt}", resume=False, track="scaffold-check",
                          suite=str(smoke), env=(), seeds=None, max_steps=None, show_progress=False)  # fmt: skip
    episode = RunDir(folder / "smoke" / f"attempt-{attempt}").completed_episodes()[0]
    if episode["status"] == "errored":
        return f"the smoke episode failed ({episode.get('error_kind')}): {clip(str(episode['error']), 1500)}"
    return None


def _propose(meta: MetaModel, messages: list[dict[str, str]], parent: Path, folder: Path, name: str,
             options: ScaffoldTrackOptions, log: list[dict[str, Any]]) -> tuple[Path | None, str, str]:  # fmt: skip
    """Ask, check, repair: (candidate folder or None, diagnosis, reason)."""
    diagnosis, failure = "", "no reply"
    for attempt in range(options.repairs + 1):
        reply = meta.ask(messages)
        log.append(meta.calls[-1].to_json())
        atomic_write_json(folder / "meta.json", log)
        try:
            diagnosis, files = parse_candidate(reply, read_submission(parent).scaffold_file)
            candidate = folder / "candidate"
            diff = make_candidate(parent, candidate, files, name, diagnosis)
            atomic_write_text(folder / "diff.patch", diff)
            failure = _smoke_check(candidate, options, folder, attempt) or ""
        except MetaReplyError as error:
            failure = f"unusable reply: {error}"
        if not failure:
            return candidate, diagnosis, "passed checks"
        messages = messages + [{"role": "assistant", "content": reply},
                               {"role": "user", "content": f"The candidate failed its check: {failure}\n"
                                "Reply again in the required format with every file, corrected."}]  # fmt: skip
    return None, diagnosis, f"rejected after {options.repairs + 1} attempts: {clip(failure, 300)}"


def _round_record(iteration: int, run: RunDir | None, results: dict[str, Any] | None, kept: bool, reason: str,
                  diagnosis: str, comparison: dict[str, Any] | None, candidate: Path) -> dict[str, Any]:  # fmt: skip
    envs = results["envs"] if results else {}
    return {
        "iteration": iteration, "kept": kept, "reason": reason, "diagnosis": diagnosis,
        "candidate": str(candidate), "run": str(run.root) if run else None,
        "progression": results["overall"]["progression_mean"] if results else None,
        "progression_by_env": {env: s["progression_mean"] for env, s in envs.items()},
        "growth_chars_per_step": mean_defined([s["growth_chars_per_step"] for s in envs.values()]),
        "write_to_search_ratio": mean_defined([s["write_to_search_ratio"] for s in envs.values()]),
        "comparison": comparison,
    }  # fmt: skip


def run_scaffold_track(options: ScaffoldTrackOptions, run_id: str | None = None, resume: bool = False) -> Path:
    """Run (or resume) the track; returns its folder."""
    root_submission = check_submission(options.eval.submission)
    root = track_root(options.eval.runs_dir, run_id, root_submission.name, "scaffold", resume)
    state = TrackState(root, "scaffold", {"submission": str(root_submission.directory),
                                          "submission_name": root_submission.name,
                                          "suite": options.eval.suite, "iterations": options.iterations}, resume)  # fmt: skip
    if not state.rounds:
        run, results = evaluate(options.eval, root_submission.directory, root / "iterations" / "0", "run", resume, "scaffold")
        state.add_round(_round_record(0, run, results, True, "the submission itself", "", None, root_submission.directory))
    with meta_model(options.meta_model, options.meta_model_name, options.meta_max_tokens) as meta:
        while len(state.rounds) <= options.iterations:
            best = max((r for r in state.rounds if r["kept"]), key=lambda r: r["iteration"])
            recent = [r["kept"] for r in state.rounds[1:]][-options.patience:]
            if options.patience and len(recent) == options.patience and not any(recent):
                break
            iteration = len(state.rounds)
            folder = root / "iterations" / str(iteration)
            shutil.rmtree(folder, ignore_errors=True)  # an iteration cut short is redone whole
            folder.mkdir(parents=True)
            parent = Path(best["candidate"])
            messages = build_prompt(scaffold_files(parent), RunDir(Path(best["run"])), state.rounds, options.meta_context_tokens)
            name = f"{root_submission.name}-it{iteration}"
            candidate, diagnosis, reason = _propose(meta, messages, parent, folder, name, options, [])
            if candidate is None:
                state.add_round(_round_record(iteration, None, None, False, reason, diagnosis, None, folder / "candidate"))
                continue
            run, results = evaluate(options.eval, candidate, folder, "run", resume, "scaffold")
            comparison = paired_comparison(RunDir(Path(best["run"])), run)
            score, best_score = results["overall"]["progression_mean"] or 0.0, best["progression"] or 0.0
            kept = score > best_score
            reason = (f"kept: {100 * score:.1f}% > {100 * best_score:.1f}%" if kept
                      else f"rejected: {100 * score:.1f}% does not beat {100 * best_score:.1f}%")  # fmt: skip
            state.add_round(_round_record(iteration, run, results, kept, reason, diagnosis, comparison, candidate))
    _finish(state, root, options)
    return root


LINEAGE_HEADERS = ["iteration", "kept", "crafter %", "minihack %", "nethack %", "overall %",
                   "delta vs parent [95% CI]", "memory growth chars/step", "write/search", "why", "diagnosis"]  # fmt: skip


def _finish(state: TrackState, root: Path, options: ScaffoldTrackOptions) -> None:
    rows = []
    for r in state.rounds:
        comparison = r.get("comparison")
        delta = (f"{100 * comparison['delta_mean']:+.1f} [{100 * comparison['delta_ci95'][0]:+.1f}, "
                 f"{100 * comparison['delta_ci95'][1]:+.1f}]") if comparison else "-"  # fmt: skip
        by_env = r.get("progression_by_env", {})
        rows.append([r["iteration"], "yes" if r["kept"] else "no", *(percent(by_env.get(e)) for e in ("crafter", "minihack", "nethack")),
                     percent(r["progression"]), delta, number(r["growth_chars_per_step"], 1),
                     number(r["write_to_search_ratio"]), clip(r["reason"], 100).replace("\n", " "),
                     clip(r.get("diagnosis") or "-", 100).replace("\n", " ")])  # fmt: skip
    write_table(root / "lineage.md", f"Scaffold track {root.name}", LINEAGE_HEADERS, rows)
    atomic_write_json(root / "lineage.json", state.rounds)
    best = max((r for r in state.rounds if r["kept"]), key=lambda r: r["iteration"])
    best_folder = root / "best"
    if best_folder.exists():
        shutil.rmtree(best_folder)
    shutil.copytree(best["candidate"], best_folder, ignore=shutil.ignore_patterns("__pycache__"))
    state.data.update({"status": "complete", "best_iteration": best["iteration"]})
    state.save()
    first = state.rounds[0]["progression"] or 0.0
    publish_row(options.leaderboards_dir, f"scaffold-{Path(options.eval.suite).stem}", {
        "track": root.name, "submission": state.data["options"]["submission_name"],
        "iterations": len(state.rounds) - 1, "best iteration": best["iteration"],
        "start %": percent(first), "best %": percent(best["progression"]),
        "gain": f"{(best['progression'] or 0.0) / first:.2f}x" if first else "-",
    }, ["track", "submission", "iterations", "best iteration", "start %", "best %", "gain"])  # fmt: skip
