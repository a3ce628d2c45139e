"""`harness leaderboard RUN...`: one row per run, sorted by overall score, in md/csv/json/html.

Rows are built only from the run directories (run.json, results.json, verification.json).
A run that is not complete (an episode unscored, the run stopped) has no publishable
number: it is refused, unless explicitly allowed, and then its row says INCOMPLETE.
A run is published only when its verification stands for it now: `harness verify` passed and
the run's files are the ones it checked (their digests are computed again here). A run whose
scaffold ran unsandboxed (its recorded isolation is not the docker sandbox's) is published
only for code this repository has reviewed: a folder of `submissions/` with the same content
hash. Others are refused unless explicitly allowed; the `sandboxed` column says how each ran.
"""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path
from typing import Any

from tabulate import tabulate

from harness.agent.submission import content_hash
from harness.envs import ENV_NAMES
from harness.report.tables import number, percent
from harness.runs.digest import changed_files, file_digests, tree_digest
from harness.runs.jobs import is_scored
from harness.runs.layout import RunDir
from harness.runs.power import Spread, mde_of_mean_of_means
from harness.runs.read import Run, read_run
from harness.runs.stats import mean_defined
from harness.runs.suites import seed_text

FORMATS = ("md", "csv", "json", "html")
COLUMNS = ["rank", "submission", "model", "adapter", "track", "suite", "seeds",
           *(f"{env} %" for env in ENV_NAMES), "minihack solved %", "overall %", "overall MDE %", "memory growth chars/step", "write/search",
           "consult-before-write", "invalid actions %", "tokens prompt", "prefix reuse %", "tokens completion", "wall time s",
           "complete", "verified", "sandboxed", "run", "submission hash"]  # fmt: skip


class IncompleteRunError(ValueError):
    """A run without a publishable number was given to the leaderboard."""


def check_complete(runs: list[RunDir]) -> None:
    """Refuse runs that are not complete, naming each and why."""
    problems = []
    for run in runs:
        results = read_run(run.root).results
        if results is None:
            problems.append(f"{run.root}: no results.json (the run never finished)")
        elif not results.complete:
            kinds = ", ".join(f"{k}: {n}" for k, n in results.failures.by_kind.items())
            problems.append(f"{run.root}: {results.episodes_scored} of {results.episodes_planned} "
                            f"episodes scored ({kinds or 'episodes missing'})")  # fmt: skip
    if problems:
        raise IncompleteRunError("incomplete runs have no publishable number:\n  " + "\n  ".join(problems) +
                                 "\ncomplete them with `harness eval ... --resume`, or pass --allow-incomplete to "
                                 "show them marked INCOMPLETE")  # fmt: skip


class UnverifiedRunError(ValueError):
    """A run without a verification that holds for its files was given to the leaderboard."""


def verification_problem(run: RunDir) -> str | None:
    """Why a run's verification does not stand for it now (None: it does): never verified,
    verified with mismatches, verified before the files were bound (older harness), or files
    changed since (recomputed here, not read)."""
    verification = read_run(run.root).verification
    if verification is None:
        return "never verified: run `harness verify` on it"
    if not verification.verified:
        first = verification.mismatches[0] if verification.mismatches else None
        detail = f"; first: {first.episode} step {first.step}: {first.problem}" if first else ""
        return f"its verification FAILED ({len(verification.mismatches)} mismatches{detail})"
    if verification.tree_digest is None:
        return "verified by an older harness that did not bind the verdict to the files: verify it again"
    now = file_digests(run.root)
    if tree_digest(now) != verification.tree_digest:
        changes = changed_files(verification.files, now)
        return f"its files changed since it was verified ({', '.join(changes[:5])}{', ...' if len(changes) > 5 else ''})"
    return None


def check_verified(found: dict[Path, str | None]) -> None:
    """Refuse runs whose verification does not stand for their files (`found`: run folder ->
    verification_problem), naming each and why."""
    problems = [f"{root}: {problem}" for root, problem in found.items() if problem]
    if problems:
        raise UnverifiedRunError("only verified runs are published:\n  " + "\n  ".join(problems) +
                                 "\nverify them with `harness verify RUN` (after any change), or pass --allow-unverified "
                                 "to show them marked")  # fmt: skip


def is_sandboxed_record(isolation: dict[str, Any] | None) -> bool:
    """Whether run.json's recorded isolation is a sandbox: no network but the relay, a read-only
    root and the submission read-only (runtime.docker writes it), whatever the runtime's name."""
    if not isolation:
        return False
    return str(isolation.get("network", "")).startswith("none") and isolation.get("root_filesystem") == "read-only" \
        and isolation.get("submission") == "read-only"  # fmt: skip


class UnsandboxedRunError(ValueError):
    """An unsandboxed run of code this repository has not reviewed was given to the leaderboard."""


def check_sandboxed(runs: list[RunDir], submissions_dir: Path) -> None:
    """Refuse runs whose scaffold ran outside a container unless it is a reviewed submission
    (a folder of `submissions_dir` holding the very files the run recorded)."""
    problems = []
    for run in runs:
        record = read_run(run.root).record
        if is_sandboxed_record(record.isolation):
            continue
        folder = submissions_dir / record.submission.name
        if folder.is_dir() and content_hash(folder) == record.submission.hash:
            continue
        problems.append(f"{run.root}: {record.submission.name} ran unsandboxed (runtime {record.runtime}) and is not "
                        f"the reviewed {folder}")  # fmt: skip
    if problems:
        raise UnsandboxedRunError("code nobody here reviewed ran outside a sandbox:\n  " + "\n  ".join(problems) +
                                  "\nrun it with --runtime docker, add the submission by pull request, or pass "
                                  "--allow-unsandboxed to publish it marked sandboxed: no")  # fmt: skip


def row_of(run_dir: RunDir, link_base: Path | None = None, verified: str | None = None) -> dict[str, Any]:
    """One row; `verified` is the column's text when the caller checked it (else from the record)."""
    run = read_run(run_dir.root)
    info, results = run.record, run.results
    if results is None:
        raise IncompleteRunError(f"{run.root}: no results.json (the run never finished)")
    envs = list(results.envs.values())
    verification = run.verification
    seeds = sorted({seed for plan in info.suite.envs.values() for seed in plan.seeds})
    link = str(run.root.resolve().relative_to(link_base.resolve())) if link_base else str(run.root)
    overall = results.overall
    row: dict[str, Any] = {
        "submission": results.submission, "model": results.model, "adapter": results.adapter or "-",
        "track": (info.options.get("extra") or {}).get("track", "eval"), "suite": results.suite,
        "seeds": seed_text(seeds),
        "overall": overall.progression_mean,
        "overall %": percent(overall.progression_mean, overall.progression_ci95),
        "overall MDE %": _detectable(run),
        "memory growth chars/step": number(mean_defined([e.growth_chars_per_step for e in envs]), 1),
        "write/search": number(mean_defined([e.write_to_search_ratio for e in envs])),
        "consult-before-write": number(mean_defined([e.consult_before_write for e in envs])),
        "invalid actions %": percent(mean_defined([e.invalid_action_rate for e in envs])),
        "tokens prompt": sum(e.tokens_prompt for e in envs),
        "tokens completion": sum(e.tokens_completion for e in envs),
        "prefix reuse %": percent(mean_defined([e.prefix_reuse for e in envs])),
        "wall time s": number(sum(e.time_s.get("total", 0.0) for e in envs), 0),
        "verified": verified or ("yes" if verification and verification.verified else
                                 ("FAILED" if verification else "not checked")),
        "complete": "yes" if results.complete else f"INCOMPLETE ({results.episodes_scored}/{results.episodes_planned})",
        "sandboxed": "yes" if is_sandboxed_record(info.isolation) else "no",
        "run": link, "submission hash": (results.submission_hash or "")[:19],
    }  # fmt: skip
    for env in ENV_NAMES:
        block = results.envs.get(env)
        row[f"{env} %"] = percent(block.progression_mean, block.progression_ci95) if block else "-"
        if env == "minihack":  # solved apart from progression (BALROG's reward rule): never mixed in
            row["minihack solved %"] = percent(block.solved_rate) if block else "-"
    return row


def _detectable(run: Run) -> str:
    """The overall difference (points) this run can tell from another run like it at 80% power
    (runs.power: two independent runs, the run's own spread of episode scores per env)."""
    by_env: dict[str, list[float]] = {}
    for episode in run.episodes():
        if is_scored(episode):
            by_env.setdefault(episode.env, []).append(100 * episode.progression)
    spreads = [Spread.of(values, paired=False) for values in by_env.values()]
    if not spreads or not all(spread.known for spread in spreads):
        return "-"  # fewer than two episodes, or all alike, in some env: the spread is unknown
    return f"{mde_of_mean_of_means(spreads):.1f}"


def leaderboard_rows(runs: list[RunDir], link_base: Path | None = None, allow_incomplete: bool = False,
                     submissions_dir: Path | None = None, allow_unverified: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """The rows, best first. Refused: incomplete runs (unless `allow_incomplete`), runs whose
    verification does not stand for their files now (unless `allow_unverified`: then marked),
    and with `submissions_dir` (the reviewed submissions) unsandboxed runs of anything else
    (None: publish every run, as `--allow-unsandboxed`)."""
    if not allow_incomplete:
        check_complete(runs)
    checked = {run.root: verification_problem(run) for run in runs}  # reads every file once: digests
    if not allow_unverified:
        check_verified(checked)
    if submissions_dir is not None:
        check_sandboxed(runs, submissions_dir)
    rows = sorted((row_of(run, link_base, "yes" if checked[run.root] is None else f"NO: {checked[run.root]}")
                   for run in runs), key=lambda r: -(r["overall"] or 0.0))  # fmt: skip
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def render(rows: list[dict[str, Any]], fmt: str = "md", title: str = "Leaderboard") -> str:
    if fmt == "json":
        return json.dumps([{k: v for k, v in r.items() if k != "overall"} | {"overall": r["overall"]} for r in rows], indent=2)
    table = [[row[column] for column in COLUMNS] for row in rows]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(COLUMNS)
        writer.writerows(table)
        return buffer.getvalue()
    if fmt == "html":
        head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in line) + "</tr>" for line in table)
        return (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>"
                f"<table id='leaderboard'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")  # fmt: skip
    if fmt == "md":
        note = ("\n\nProgression in % (95% bootstrap interval over seeds); overall = unweighted mean of envs. "
                "`overall MDE %`: the smallest overall difference, in points, that a run like this one can tell from "
                "another at 80% power and 0.05 two-sided (from its episodes' spread; `harness power` for more seeds). "
                "`verified`: `harness verify` replayed every game from its own log, recomputed every score and re-executed the "
                "submission against the recorded answers; the run's files are the ones it checked (digests compared when "
                "this table was made).\n")  # fmt: skip
        return f"# {title}\n\n" + tabulate(table, headers=COLUMNS, tablefmt="github", disable_numparse=True) + note
    raise ValueError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
