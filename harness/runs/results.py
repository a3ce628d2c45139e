"""Aggregating a run's episode.json files into results.json (per env and overall)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from harness.runs.jobs import INFRASTRUCTURE_ERRORS, is_scored
from harness.runs.layout import RunDir, atomic_write_json
from harness.runs.read import Run, read_run
from harness.runs.records import EpisodeRecord, Results
from harness.runs.stats import mean_ci95, mean_defined, mean_of_group_means_ci95


def env_summary(episodes: list[EpisodeRecord]) -> dict[str, Any]:
    """The results.json block of one env from its episodes."""
    scored = [e for e in episodes if is_scored(e)]
    progressions = [e.progression for e in scored]
    mean, low, high = mean_ci95(progressions)
    memory = [e.memory for e in scored]
    return {
        "episodes": len(scored),
        "errored_infrastructure": len(episodes) - len(scored),
        "errored_scaffold": sum(e.status == "errored" for e in scored),
        "progression_mean": mean if progressions else None,
        "progression_ci95": [low, high] if progressions else None,
        # every metric per episode, then the mean over the episodes where it is defined
        # (memory.metrics: each seed weighs the same, as in progression)
        "growth_chars_per_step": mean_defined([m.growth_chars_per_step for m in memory]),
        "write_to_search_ratio": mean_defined([m.write_to_search_ratio for m in memory]),
        "consult_before_write": mean_defined([m.consult_before_write for m in memory]),
        "invalid_action_rate": mean_defined([e.invalid_actions / e.steps if e.steps else None for e in scored]),
        "solved_rate": mean_defined([float(e.solved) if e.solved is not None else None for e in scored]),
        "steps": sum(e.steps for e in scored),
        "tokens_prompt": sum(e.tokens.prompt for e in scored),
        "tokens_completion": sum(e.tokens.completion for e in scored),
        "prefix_reuse": mean_defined([e.tokens.prompt_reusable / e.tokens.prompt
                                      if e.tokens.prompt and e.tokens.prompt_reusable is not None else None
                                      for e in scored]),  # fmt: skip
        "time_s": {key: round(sum(getattr(e.time_s, key) for e in scored), 3)
                   for key in ("env", "model", "memory", "scaffold", "harness", "total")},
    }  # fmt: skip


def failure_summary(episodes: list[EpisodeRecord]) -> dict[str, Any]:
    """Errored episodes by kind, with the first error of each kind in full."""
    by_kind: dict[str, int] = defaultdict(int)
    first: dict[str, dict[str, str]] = {}
    for e in episodes:
        if e.status != "errored":
            continue
        kind = str(e.error_kind or "unknown")
        by_kind[kind] += 1
        first.setdefault(kind, {"episode": e.key, "error": str(e.error)})
    return {"by_kind": dict(sorted(by_kind.items())), "first": first,
            "infrastructure": sum(n for kind, n in by_kind.items() if kind in INFRASTRUCTURE_ERRORS)}  # fmt: skip


def summarize(run: Run) -> Results:
    """results.json's content for a run, from its run.json and episode records."""
    info = run.record
    by_env: dict[str, list[EpisodeRecord]] = defaultdict(list)
    recorded = run.episodes()
    for episode in recorded:
        by_env[episode.env].append(episode)
    envs = {env: env_summary(episodes) for env, episodes in sorted(by_env.items())}
    groups = [[e.progression for e in by_env[env] if is_scored(e)] for env in envs]
    mean, low, high = mean_of_group_means_ci95(groups)
    planned = info.suite.episode_keys()
    scored = {e.key for e in recorded if is_scored(e)}
    missing = [key for key in planned if key not in scored]
    return Results.model_validate({
        "run_id": info.run_id,
        "submission": info.submission.name,
        "submission_hash": info.submission.hash,
        "model": info.model.name,
        "adapter": info.model.adapter,
        "suite": info.suite.name,
        "envs": envs,
        "overall": {"progression_mean": mean if envs else None,
                    "progression_ci95": [low, high] if envs else None},
        "episodes_planned": len(planned),
        "episodes_recorded": len(recorded),
        "episodes_scored": len(scored & set(planned)),
        "complete": bool(planned) and not missing,
        "missing": missing,
        "failures": failure_summary(recorded),
        "stop_reason": info.stop_reason,
    })  # fmt: skip


def aggregate(run: RunDir) -> Results:
    """Write results.json from the recorded episodes; returns it.

    Episodes that failed for infrastructure reasons (model server, game, worker) are not
    scored: they are counted apart and `--resume` retries them. A scaffold's own errors score
    what the episode reached. The run is `complete` only when every planned episode is scored;
    `missing` lists the others (never recorded, or an infrastructure failure), and a run that
    is not complete has no publishable number (report.leaderboard refuses it).
    """
    results = summarize(read_run(run.root))
    atomic_write_json(run.results_file, results.model_dump(mode="json"))
    return results
