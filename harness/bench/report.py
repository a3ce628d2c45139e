"""Writes one benchmark's figures into its own section of docs/benchmarks.md."""

from __future__ import annotations

import datetime
import os
import platform
import re
from pathlib import Path

DOCS_FILE = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
_HEADER = "# Benchmarks\n\nFigures written by `harness bench ...`; each section names its command.\n"


def machine_summary() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(name: str, command: str, body: str, path: Path = DOCS_FILE) -> Path:
    """Replace (or append) the section `name` of the benchmarks file."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    stamp = datetime.date.today().isoformat()
    section = (
        f"{start}\n## {name}\n\nCommand: `{command}` ({stamp}; {machine_summary()})\n\n"
        f"{body.rstrip()}\n{end}"
    )
    text = path.read_text() if path.exists() else _HEADER
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
