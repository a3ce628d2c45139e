"""`harness verify RUN`: check every recorded number of a run without re-running its model.

- the suite: run.json's suite must be the suite its name stands for (runs.suites.rederived);
- the episodes: each planned episode is recorded exactly once, none is extra, each folder
  holds the episode it names; each is replayed and recomputed (report.verify_episode);
- results.json: recomputed from run.json and the episodes (runs.results.summarize), and every
  value compared: means, CIs, memory metrics, tokens, times, completeness, failures;
- run.json's provenance against the records carrying the same facts (report.verify_provenance);
- the submission: re-executed against the recorded answers (report.rerun).
Each difference is named with where it is. The verdict goes to verification.json (leaderboard
rows cite it).
"""

from __future__ import annotations

import datetime
from collections import Counter
from pathlib import Path

from harness.envs.base import STANDARD_TEXT, TextVariant
from harness.report.rerun import rerun_problems
from harness.report.tokens import PromptTokens, prompt_token_problems
from harness.report.verify_episode import check_episode, differences, extra_keys, mismatch
from harness.report.verify_provenance import call_problems, file_problems, run_problems
from harness.runs.derive import merged_sampling
from harness.runs.digest import file_digests, tree_digest
from harness.runs.layout import EPISODE_FILE, VERIFICATION_FILE, RunDir, atomic_write_json
from harness.runs.read import RecordError, Run, read_episode, read_messages, read_run, read_steps
from harness.runs.records import SCHEMA_VERSION, MismatchRecord, RunRecord, VerificationRecord
from harness.runs.results import summarize
from harness.runs.suites import rederived

__all__ = ["CLAIMED", "VERIFICATION_FILE", "verify_run"]

# What no replay can re-derive: measured or reported by the model server, so taken as claimed.
CLAIMED = ("token counts as the server reported them (prompt tokens are re-derived for runs on the embedded model; "
           "completion tokens never are)", "latencies and time splits",
           "the model server's identity beyond the model id it reported")


def verify_run(run_dir: RunDir | Path | str, write: bool = True, rerun: bool = True,
               submission: Path | None = None) -> VerificationRecord:  # fmt: skip
    """Check every record of a run; with `rerun` (the default) also play every scored episode
    again with the submission's code against the recorded answers (report.rerun), the
    submission found by its content hash (`submission`, else run.json's folder, else
    submissions/<name>)."""
    run = read_run(run_dir.root if isinstance(run_dir, RunDir) else run_dir)
    report = VerificationRecord(run_id=run.dir.run_id, verified=True, episodes_checked=0, steps_replayed=0)
    report.mismatches += _check_suite(run.record, report.warnings)
    report.mismatches += run_problems(run.record)
    _check_episodes(run, report)
    if run.record.sampling_used is not None:  # what the verified episodes asked, together
        used = merged_sampling(episode.sampling for episode in run.episodes())
        if used != run.record.sampling_used:
            report.mismatches.append(mismatch("run.json", None, f"sampling_used is {run.record.sampling_used}, "
                                              f"the episodes' calls sent {used}"))  # fmt: skip
    if rerun:
        report.mismatches += rerun_problems(run, submission, report.warnings)
        report.reexecuted = not any(w.startswith("recorded before 1.6") for w in report.warnings)
    else:
        report.warnings.append("the submission was not re-executed (--no-rerun): its decisions are unchecked")
    report.mismatches += _check_results(run)
    report.verified = not report.mismatches and report.episodes_checked > 0
    report.checked_at = datetime.datetime.now().isoformat(timespec="seconds")
    report.claimed = list(CLAIMED)
    report.files = file_digests(run.root)  # what this verdict is about: the leaderboard checks it
    report.tree_digest = tree_digest(report.files)
    if write:
        atomic_write_json(run.root / VERIFICATION_FILE, report.model_dump(mode="json"))
    return report


def _check_suite(record: RunRecord, warnings: list[str]) -> list[MismatchRecord]:
    """A suite edited in run.json (a seed dropped, a cap raised) no longer matches its name."""
    try:
        suite = rederived(record.suite.name, record.suite.source)
    except ValueError as error:
        warnings.append(f"the suite {record.suite.name!r} could not be rebuilt from its file, so run.json's "
                        f"suite is unchecked: {error}")  # fmt: skip
        return []
    problems = []
    recorded_text = record.suite.text.model_dump(mode="json") if record.suite.text else None
    if recorded_text is None:
        warnings.append("run.json does not say which text variants the model read (recorded before "
                        "variants existed): its observations are replayed as the standard text")  # fmt: skip
    elif recorded_text != suite.text.to_json():
        problems.append(mismatch("run.json/suite", None, f"the text variants {recorded_text} differ from "
                                 f"{suite.text.to_json()}, which the name {record.suite.name!r} stands for"))  # fmt: skip
    expected = suite.to_json()["envs"]
    recorded = {env: plan.model_dump(mode="json") for env, plan in record.suite.envs.items()}
    if recorded == expected:
        return problems
    changed = sorted(env for env in set(expected) | set(recorded) if expected.get(env) != recorded.get(env))
    return problems + [mismatch("run.json/suite", None, f"the suite differs from {record.suite.name!r} as its file defines it, "
                                             f"in {', '.join(changed)}: recorded {recorded}, defined {expected}")]  # fmt: skip


def _check_episodes(run: Run, report: VerificationRecord) -> None:
    planned = run.record.suite
    text = TextVariant(**planned.text.model_dump()) if planned.text else STANDARD_TEXT
    seen: Counter[str] = Counter()
    counter = _prompt_token_counter(run, report.warnings)
    for folder in run.dir.episode_dirs():
        where = str(folder.relative_to(run.root))
        if not (folder / EPISODE_FILE).exists():
            report.mismatches.append(mismatch(where, None, "episode has no episode.json (incomplete)"))
            continue
        try:
            episode, steps = read_episode(folder), read_steps(folder)
        except RecordError as error:
            report.mismatches.append(mismatch(where, None, f"unreadable record: {error}"))
            continue
        seen[episode.key] += 1
        plan = planned.envs.get(episode.env)
        if plan is None or episode.task not in plan.tasks or episode.seed not in plan.seeds:
            report.mismatches.append(mismatch(episode.key, None, "this episode is not in the run's suite (env, task or seed changed)"))
            continue
        if (folder.parent.parent.name, folder.parent.name, folder.name) != (episode.env, episode.task, str(episode.seed)):
            report.mismatches.append(mismatch(episode.key, None, f"episode.json names another episode than its folder {where}"))
        if str(episode.spec.get("answers", "forgiving")) != run.record.submission.answers:
            report.mismatches.append(mismatch(episode.key, None, f"the episode read answers by the rule "
                                              f"{episode.spec.get('answers', 'forgiving')!r}, run.json says {run.record.submission.answers!r}"))  # fmt: skip
        problems, replayed = check_episode(folder, episode, steps, plan, text)
        report.mismatches += problems + call_problems(episode.key, steps, run.record) + file_problems(run, folder, episode)
        if counter is not None:
            report.mismatches += prompt_token_problems(episode.key, steps, read_messages(folder), counter)
        report.episodes_checked += 1
        report.steps_replayed += replayed
    for key, count in sorted(seen.items()):
        if count > 1:
            report.mismatches.append(mismatch(key, None, f"the episode is recorded {count} times (duplicated)"))
    for key in planned.episode_keys():
        if key not in seen:
            report.mismatches.append(mismatch(key, None, "a planned episode has no record (missing)"))


def _prompt_token_counter(run: Run, warnings: list[str]) -> PromptTokens | None:
    """The embedded model's prompt token counter, for runs on it (None for other servers)."""
    if run.record.model.endpoint != "embedded":
        return None
    try:
        return PromptTokens()
    except (ImportError, OSError, KeyError, ValueError) as error:
        warnings.append(f"prompt tokens not re-derived: the embedded model's tokenizer did not load ({error})")
        return None


def _check_results(run: Run) -> list[MismatchRecord]:
    if not run.dir.results_file.exists():
        return [mismatch("results.json", None, "results.json is missing")]
    try:
        stored = run.results
    except RecordError as error:
        return [mismatch("results.json", None, f"unreadable: {error}")]
    assert stored is not None
    expected = summarize(run).model_dump(mode="json")
    expected.pop("schema_version")  # the version it was written with, not a number of the episodes
    recorded = stored.model_dump(mode="json")
    recorded.pop("schema_version")
    problems = [mismatch("results.json", None, f"{path.lstrip('.')} is {was}, the episodes give {value}")
                for path, was, value in differences(recorded, expected, "")]  # fmt: skip
    if not _newer(stored.schema_version):  # a key this harness does not write is not a number of the episodes
        problems += [mismatch("results.json", None, f"{path.lstrip('.')} is not a key results.json has (added by hand?)")
                     for path in extra_keys(recorded, expected, "")]  # fmt: skip
    return problems


def _newer(version: str) -> bool:
    major, _, minor = version.partition(".")
    ours_major, _, ours_minor = SCHEMA_VERSION.partition(".")
    return (int(major), int(minor or 0)) > (int(ours_major), int(ours_minor))
