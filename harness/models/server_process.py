"""An OpenAI-compatible model server run as a child process: started, awaited, watched, stopped.

The embedded llama.cpp server and the local vLLM server differ only in their command line:
both log to a file, are ready when `/v1/models` answers, are watched for an exit (a
scheduler polls `failure()`: a dead server stops the run) and stop with terminate-then-kill.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def describe_exit(returncode: int | None) -> str:
    """'exited with code 1' or 'was killed by signal SIGSEGV' (a negative Popen return code)."""
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"was killed by signal {name}"
    return f"exited with code {returncode}"


class ServerProcess:
    """Subclasses give `name`, `command()` and optionally `environment()` and `_check_ready()`."""

    name = "model server"
    poll_interval_s = 0.2
    stop_timeout_s = 10.0

    def __init__(self, host: str, port: int | None, log_prefix: str, log_path: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path or Path(tempfile.gettempdir()) / f"{log_prefix}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def _check_ready(self) -> None:
        """Called once /v1/models answers; raise to refuse a server that came up wrong."""

    def start(self, timeout_s: float = 120.0) -> str:
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=self.environment())
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} {describe_exit(self.process.returncode)} while starting; log: {self.log_path}")
            try:  # ready when the models list answers (/health only says the process is up)
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    self._check_ready()
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(self.poll_interval_s)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout_s:.0f} s; log: {self.log_path}")

    def failure(self) -> str | None:
        """None while the server runs; once its process has exited, what happened and where its log is."""
        if self.process is None or self.process.poll() is None:
            return None
        return (f"the {self.name} {self.url} {describe_exit(self.process.returncode)}; log: {self.log_path}"
                f"\n  last lines of its log:\n{self._log_tail()}")  # fmt: skip

    def _log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "    (log unreadable)"
        return "\n".join("    " + line for line in text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
