"""The failure summary of a run that is not complete: what failed, how often, where, and what next.

Printed by `harness eval` (to stderr, before it exits non-zero) from the run's own records:
the count per failure kind, the first error of each kind in full, the model servers and
their logs, why the run was stopped, and the episodes still missing.
"""

from __future__ import annotations

from typing import Any

from harness.runs.jobs import INFRASTRUCTURE_ERRORS
from harness.runs.layout import RunDir

MISSING_SHOWN = 10


def failure_report(run: RunDir, results: dict[str, Any]) -> str:
    info = run.read_run()
    failures = results.get("failures") or {}
    lines = [f"\nRUN NOT COMPLETE: {results.get('episodes_scored', 0)} of {results.get('episodes_planned', 0)} "
             f"planned episodes scored; run status: {info.get('status')}."]  # fmt: skip
    if info.get("stop_reason"):
        lines.append(f"The run was stopped: {info['stop_reason']}")
    by_kind = failures.get("by_kind") or {}
    if by_kind:
        lines.append("Failed episodes by kind: " + ", ".join(
            f"{kind} {count} ({'infrastructure, not scored' if kind in INFRASTRUCTURE_ERRORS else 'the submission, scored'})"
            for kind, count in by_kind.items()))  # fmt: skip
    for kind, first in (failures.get("first") or {}).items():
        lines.append(f"First {kind} error ({first['episode']}):\n{_indent(first['error'])}")
    model = info.get("model", {})
    lines.append(f"Model: {model.get('name')} at {model.get('endpoint')}")
    for server in info.get("servers") or []:
        lines.append(f"  server {server.get('url')}" + (f", log: {server['log']}" if server.get("log") else ""))
    missing = results.get("missing") or []
    if missing:
        shown = ", ".join(missing[:MISSING_SHOWN]) + (f" and {len(missing) - MISSING_SHOWN} more" if len(missing) > MISSING_SHOWN else "")
        lines.append(f"Missing episodes: {shown}")
    lines.append(f"Fix the cause, then complete the run with: harness eval ... --run-id {run.run_id} --resume")
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in str(text).splitlines())
