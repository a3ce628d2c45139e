"""Markdown/text tables of results (tabulate), shared by every report."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate


def percent(value: float | None, ci: list[float] | None = None) -> str:
    if value is None:
        return "-"
    text = f"{100 * value:.1f}"
    if ci is not None and ci[0] != ci[1]:
        text += f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    return text


def number(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


RUN_TABLE_HEADERS = ["env", "episodes", "progression % [95% CI]", "memory growth chars/step",
                     "write/search", "consult-before-write", "invalid actions %",
                     "tokens prompt", "tokens completion", "time s"]  # fmt: skip


def run_table(results: dict[str, Any], tablefmt: str = "github") -> str:
    """One row per env and an overall row, from results.json."""
    rows = []
    for env, summary in results["envs"].items():
        rows.append([
            env, summary["episodes"], percent(summary["progression_mean"], summary["progression_ci95"]),
            number(summary["growth_chars_per_step"], 1), number(summary["write_to_search_ratio"]),
            number(summary["consult_before_write"]), percent(summary["invalid_action_rate"]),
            summary["tokens_prompt"], summary["tokens_completion"], number(summary["time_s"]["total"], 0),
        ])  # fmt: skip
    overall = results["overall"]
    rows.append(["overall (mean of envs)", sum(s["episodes"] for s in results["envs"].values()),
                 percent(overall["progression_mean"], overall["progression_ci95"]),
                 "", "", "", "", "", "", ""])  # fmt: skip
    return tabulate(rows, headers=RUN_TABLE_HEADERS, tablefmt=tablefmt, disable_numparse=True)


def run_leaderboard_markdown(results: dict[str, Any]) -> str:
    title = (f"# {results['submission']} on suite {results['suite']}\n\n"
             f"Run `{results['run_id']}`, model `{results['model']}`"
             + (f", adapter `{results['adapter']}`" if results.get("adapter") else "") + "\n\n")  # fmt: skip
    note = "" if results.get("complete") else "\n\n(incomplete run: resume it with `--resume`)"
    return title + run_table(results) + note + "\n"
