"""The failure summary of a run that is not complete: what failed, how often, where, and what next.

Printed by `harness eval` (to stderr, before it exits non-zero) from the run's own records:
the count per failure kind, the first error of each kind in full, the model servers and
their logs, why the run was stopped, and the episodes still missing.
"""

from __future__ import annotations

from pathlib import Path

from harness.runs.jobs import INFRASTRUCTURE_ERRORS
from harness.runs.launches import read_launches
from harness.runs.read import Run, read_run

MISSING_SHOWN = 10


def failure_report(run_root: Path) -> str:
    run = read_run(run_root)
    info, results = run.record, run.results
    if results is None:
        return f"\nRUN NOT COMPLETE: {run.root} has no results.json; run status: {info.status}."
    lines = [f"\nRUN NOT COMPLETE: {results.episodes_scored} of {results.episodes_planned} "
             f"planned episodes scored; run status: {info.status}."]  # fmt: skip
    if info.stop_reason:
        lines.append(f"The run was stopped: {info.stop_reason}")
    if results.failures.by_kind:
        lines.append("Failed episodes by kind: " + ", ".join(
            f"{kind} {count} ({'infrastructure, not scored' if kind in INFRASTRUCTURE_ERRORS else 'the submission, scored'})"
            for kind, count in results.failures.by_kind.items()))  # fmt: skip
    for kind, first in results.failures.first.items():
        lines.append(f"First {kind} error ({first.episode}):\n{_indent(first.error)}")
    lines.append(f"Model: {info.model.name} at {info.model.endpoint}")
    for server in info.servers:
        lines.append(f"  server {server.get('url')}" + (f", log: {server['log']}" if server.get("log") else ""))
    missing = results.missing
    if missing:
        more = f" and {len(missing) - MISSING_SHOWN} more" if len(missing) > MISSING_SHOWN else ""
        lines.append(f"Missing episodes: {', '.join(missing[:MISSING_SHOWN])}{more}")
    lines.append(f"Fix the cause, then complete the run with: harness eval ... --run-id {run.dir.run_id} --resume")
    return "\n".join(lines)


def submission_failures(run_root: Path) -> tuple[str, bool] | None:
    """For a complete run whose episodes ended on the submission's own failures (its code
    raised, the server refused its requests, its trace disagreed with the game): the summary,
    and whether every episode failed so (the run then measures the failure, not the play).
    None when no episode failed."""
    run = read_run(run_root)
    results = run.results
    if results is None or not results.failures.by_kind:
        return None
    failed = sum(results.failures.by_kind.values())
    every = results.episodes_planned is not None and failed >= results.episodes_planned
    lines = [f"\n{'EVERY EPISODE FAILED' if every else 'FAILED EPISODES'}: {failed} of {results.episodes_planned} "
             "ended on the submission's own failures (scored at the progression they reached): "
             + ", ".join(f"{kind} {count}" for kind, count in results.failures.by_kind.items())]  # fmt: skip
    for kind, first in results.failures.first.items():
        lines.append(f"First {kind} error ({first.episode}):\n{_indent(first.error)}")
    if every:
        lines.append("No episode played to its end: check the scaffold and the model server before reading this number.")
    return "\n".join(lines), every


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in str(text).splitlines())


def _relaunches(run: Run) -> list[str]:
    """The episodes launched more than once in this run (their worker or game died), said loudly."""
    moved = []
    for episode in run.episodes():
        launches = read_launches(run.episode_folder(episode))
        for launch in launches[:-1]:
            where = launch.placement.get("node") or launch.placement.get("host", "?")
            moved.append(f"{episode.key} launch {launch.launch} on {str(where)[:16]}: {launch.outcome[:160]}")
    if not moved:
        return []
    return [f"INFRASTRUCTURE: {len(moved)} launches ended with their worker or game dead and were launched again, "
            f"continuing from the last recorded step:"] + [f"  {line}" for line in moved]


def resume_summary(run_root: Path) -> str | None:
    """What mid-episode resumes the run's episodes went through (agent.resume), or None."""
    run = read_run(run_root)
    lines = _relaunches(run)
    episodes = [episode for episode in run.episodes() if episode.resumes]
    if not episodes:
        return "\n".join(lines) or None
    continued = [e for e in episodes if e.resumes[-1].continued]
    restarted = [e for e in episodes if not e.resumes[-1].continued]
    if continued:
        lines.append(f"resume: continued {len(continued)} episodes from their last recorded step "
                     f"({', '.join(f'{e.key} at step {e.resumes[-1].from_step}' for e in continued)})")  # fmt: skip
    if restarted:
        lines.append(f"resume: restarted {len(restarted)} episodes from step 0 "
                     f"({'; '.join(f'{e.key}: {e.resumes[-1].reason}' for e in restarted)})")  # fmt: skip
    return "\n".join(lines)
