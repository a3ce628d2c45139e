"""The HTML report, checked in headless Chromium: the table shows, the viewer renders steps."""

import shutil
import subprocess
from pathlib import Path

import pytest
from test_report import runs  # noqa: F401  (the module's runs fixture)

from harness.report.view import build_view
from harness.runs.layout import RunDir

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make system-deps installs it)")


def _chromium(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    return subprocess.run([CHROMIUM, *flags, *arguments], capture_output=True, text=True, timeout=120)


def test_report_screenshot_shows_the_results_table(runs: dict[str, RunDir], tmp_path: Path) -> None:  # noqa: F811
    index = build_view(runs["wood"], tmp_path / "view")
    assert {"progression.png", "memory_size.png", "memory_ops.png", "write_search.png"} <= {p.name for p in index.parent.iterdir()}
    dom = _chromium(tmp_path, "--dump-dom", index.as_uri()).stdout
    assert "<table id=\"results\">" in dom and "crafter" in dom and "overall (mean of envs)" in dom
    shot = tmp_path / "index.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,900", index.as_uri())
    from PIL import Image

    image = Image.open(shot).convert("L")
    assert image.size == (1280, 900)
    top = image.crop((0, 0, 1280, 300))
    dark = sum(1 for value in top.getdata() if value < 100)
    assert dark > 2000  # the heading and the table's text and borders are drawn


def test_trajectory_viewer_renders_calls_memory_ops_and_diffs(runs: dict[str, RunDir], tmp_path: Path) -> None:  # noqa: F811
    index = build_view(runs["wood"], tmp_path / "view")
    page = index.parent / "episodes" / "crafter__crafter__0.html"
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert "<h2>step 0</h2>" in dom and "LLM calls" in dom
    assert "memory diff" in dom and "trees.md" in dom and "append trees.md" in dom
