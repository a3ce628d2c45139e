"""The local runtime: each episode worker is a child process of the harness."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


class LocalRuntime:
    name = "local"

    def launch(self, job_path: Path, log_path: Path) -> subprocess.Popen[str]:
        """Start `python -m harness.agent.worker JOB` (stdout: progress events; stderr: log)."""
        with open(log_path, "w") as log:  # the child keeps its own copy of the handle
            return subprocess.Popen(
                [sys.executable, "-m", "harness.agent.worker", str(job_path)],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,  # Ctrl-C is the harness's to handle, not the workers'
            )

    def close(self) -> None:
        pass
