"""Markdown/text tables of results (tabulate), shared by every report."""

from __future__ import annotations

from tabulate import tabulate

from harness.runs.records import Results


def percent(value: float | None, ci: list[float] | None = None) -> str:
    if value is None:
        return "-"
    text = f"{100 * value:.1f}"
    if ci is not None and ci[0] != ci[1]:
        text += f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    return text


def number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


RUN_TABLE_HEADERS = ["env", "episodes", "progression % [95% CI]", "solved %", "memory growth chars/step",
                     "write/search", "consult-before-write", "invalid actions %",
                     "tokens prompt", "prefix reuse %", "tokens completion", "time s"]  # fmt: skip


def incomplete_notice(results: Results) -> str:
    """The loud line an incomplete run carries wherever its table is shown ('' if complete)."""
    if results.complete:
        return ""
    causes = ", ".join(f"{kind}: {count}" for kind, count in results.failures.by_kind.items()) or "not run"
    text = (f"INCOMPLETE RUN: {results.episodes_scored} of {results.episodes_planned or 0} planned episodes "
            f"scored ({causes}); its numbers are not a result and cannot be published.")  # fmt: skip
    if results.stop_reason:
        text += f"\nThe run was stopped: {results.stop_reason}"
    return text


def run_table(results: Results, tablefmt: str = "github") -> str:
    """One row per env and an overall row, from results.json; an incomplete run says so."""
    rows = []
    for env, summary in results.envs.items():
        rows.append([
            env, summary.episodes, percent(summary.progression_mean, summary.progression_ci95),
            percent(summary.solved_rate), number(summary.growth_chars_per_step, 1), number(summary.write_to_search_ratio),
            number(summary.consult_before_write), percent(summary.invalid_action_rate),
            summary.tokens_prompt, percent(summary.prefix_reuse), summary.tokens_completion,
            number(summary.time_s.get("total"), 0),
        ])  # fmt: skip
    overall = results.overall
    score = (percent(overall.progression_mean, overall.progression_ci95) if results.complete
             else f"INCOMPLETE ({results.episodes_scored}/{results.episodes_planned or 0} scored)")  # fmt: skip
    rows.append(["overall (mean of envs)", sum(s.episodes for s in results.envs.values()),
                 score, "", "", "", "", "", "", "", "", ""])  # fmt: skip
    table = tabulate(rows, headers=RUN_TABLE_HEADERS, tablefmt=tablefmt, disable_numparse=True)
    notice = incomplete_notice(results)
    return f"{notice}\n\n{table}" if notice else table


def run_leaderboard_markdown(results: Results) -> str:
    title = (f"# {results.submission} on suite {results.suite}\n\n"
             f"Run `{results.run_id}`, model `{results.model}`"
             + (f", adapter `{results.adapter}`" if results.adapter else "") + "\n\n")  # fmt: skip
    note = "" if results.complete else "\n\n(resume it with `--resume` once the cause is fixed)"
    return title + run_table(results) + note + "\n"
