"""`harness power`: seeds needed to detect a difference (report.power_table)."""

from __future__ import annotations

from pathlib import Path

import click

# runs.power's ALPHA and POWER (a test keeps them equal): the CLI module imports nothing of
# harness.runs, so the env image's `harness` entry point loads without the records' dependencies.
ALPHA, POWER = 0.05, 0.80


@click.command("power")
@click.option("--suite", default="standard", show_default=True, help="Suite name or YAML file.")
@click.option("--delta", default=5.0, show_default=True, help="The difference to detect, in progression points (0-100).")
@click.option("--from", "runs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A run whose scores give the spread; twice: two runs of the same seeds, paired.")
@click.option("--sd", type=float, default=None, help="A stated standard deviation of scores, in points, for every env.")
@click.option("--alpha", default=ALPHA, show_default=True, help="Two-sided significance level.")
@click.option("--power", "power_level", default=POWER, show_default=True, help="The power wanted.")
def power(suite: str, delta: float, runs: tuple[Path, ...], sd: float | None, alpha: float, power_level: float) -> None:
    """How many seeds per game a suite needs to detect DELTA points, and what it detects now."""
    from harness.report.power_table import PowerError, power_table, spreads_from
    from harness.runs.suites import load_suite

    plan = load_suite(suite)
    try:
        spreads = spreads_from(list(runs), sd, [env.env for env in plan.envs])
    except PowerError as error:
        raise click.ClickException(str(error)) from None
    click.echo(power_table(plan, delta, spreads, alpha, power_level))
