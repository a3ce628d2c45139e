"""The local runtime: each episode worker is a child process of the harness.

Workers are forked from a fork server that has imported the harness, the games and the
model client once (`start="fork"`, the default): a worker then starts in tens of
milliseconds instead of paying 1-2 s of CPU for its imports, which on a small machine
decided how fast 32 episodes got under way (docs/benchmarks.md, scale). `start="spawn"`
starts `python -m harness.agent.worker JOB` afresh, as before. Either way a worker gets the
harness's environment and working directory as they are at launch, its own session (Ctrl-C
is the harness's to handle), progress events on its stdout and its log on stderr.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any

from harness.runs.jobs import EpisodeSpec
from harness.runs.seal import seal_episode

START_METHODS = ("fork", "spawn")
# Imported once in the fork server: what every worker needs before its first step.
PRELOAD = ["harness.runtime.fork_preload", "harness.agent.worker"]
# And what each game needs, for a run that plays it (preload_for): a NetHack run's server does not
# load Crafter, nor a Crafter run's NLE. Crafter's entry imports crafter (numba hidden where its
# noise loop was compiled ahead of time) and loads its world generation and textures.
GAME_PRELOAD = {"crafter": ["harness.envs.crafter_warm"],
                "minihack": ["harness.envs.minihack"], "nethack": ["harness.envs.nethack"]}  # fmt: skip
_game_preload: list[str] = []


def preload_for(games: Iterable[str]) -> None:
    """Have the fork server, when it starts, also load what these games need; a server already
    started stays as it is (a game it did not load is imported by each worker that plays it)."""
    for game in games:
        for module in GAME_PRELOAD.get(game, ()):
            if module not in _game_preload:
                _game_preload.append(module)


def fork_context() -> Any:
    """The fork server's multiprocessing context (started on first use, once per process)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD + _game_preload + ["harness.runtime.fork_frozen"])
    return context


def _adopt(environ: dict[str, str], cwd: str) -> None:
    """A forked child takes the launching process's current environment and folder."""
    os.setsid()
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)


def _call_captured(function: Callable[..., None], args: tuple[Any, ...], out: str, err: str,
                   environ: dict[str, str], cwd: str) -> None:  # fmt: skip
    _adopt(environ, cwd)
    for fd, path in ((1, out), (2, err)):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(handle, fd)
        os.close(handle)
    function(*args)
    sys.stdout.flush()
    sys.stderr.flush()


def run_forked(function: Callable[..., None], *args: Any, timeout_s: float) -> tuple[int | None, str, str]:
    """Call `function(*args)` (importable by name) in a process forked from the fork server, as
    `subprocess.run` would run a fresh interpreter: (exit code, or None when it was ended after
    `timeout_s`; stdout; stderr)."""
    with tempfile.TemporaryDirectory(prefix="harness-fork-") as scratch:
        out, err = str(Path(scratch) / "out"), str(Path(scratch) / "err")
        process = fork_context().Process(target=_call_captured,
                                         args=(function, args, out, err, dict(os.environ), os.getcwd()))  # fmt: skip
        process.start()
        process.join(timeout_s)
        if process.exitcode is None:
            process.kill()
            process.join()
            code = None
        else:
            code = process.exitcode
        return code, _read(out), _read(err)


# A seal (runs.seal) reads a whole episode again: 0.1-0.2 s of CPU for 300 NetHack steps. In the
# harness process 64 of them ran one at a time under its interpreter lock, while the last episodes
# still played (a NetHack run at N = 64 ended 9 s later than without them). Forked, seals run
# side by side, and at a lower priority they take the cores play leaves idle.
SEAL_NICENESS = 10
SEAL_TIMEOUT_S = 3600.0


def _seal_at_low_priority(spec: EpisodeSpec, salvaged: bool) -> None:
    os.nice(SEAL_NICENESS)
    seal_episode(spec, salvaged)


def seal_forked(spec: EpisodeSpec, salvaged: bool) -> None:
    """runs.seal.seal_episode in a child of the fork server (the harness's own process: no
    scaffold code runs there), at a lower priority than play. A child that fails is not
    trusted to have said why: the seal is then done again here, where its error raises."""
    try:
        code, _, said = run_forked(_seal_at_low_priority, spec, salvaged, timeout_s=SEAL_TIMEOUT_S)
    except Exception as error:  # no fork server to ask (it could not start again): the seal is still owed
        code, said = None, f"{type(error).__name__}: {error}"
    if code != 0:
        print(f"NOTE: the seal of {spec.episode_dir} in a child of the fork server ended with "
              f"{'no exit code' if code is None else f'code {code}'} ({said.strip()[-500:] or 'nothing said'}); "
              f"sealed in the harness's process instead", file=sys.stderr, flush=True)  # fmt: skip
        seal_episode(spec, salvaged)


def _read(path: str) -> str:
    return Path(path).read_text(errors="replace") if Path(path).exists() else ""


def _run_worker(job_path: str, log_path: str, events: Connection, environ: dict[str, str], cwd: str) -> None:
    """The forked worker: the launch-time environment and folder, events on fd 1, log on fd 2."""
    _adopt(environ, cwd)
    os.dup2(events.fileno(), 1)
    events.close()
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 2)
    os.close(log)
    from harness.agent.worker import main

    code = main(job_path)
    sys.stdout.flush()
    sys.exit(code)


class ForkedWorker:
    """A forked worker with the part of subprocess.Popen's interface the scheduler uses."""

    def __init__(self, context: Any, job_path: Path, log_path: Path) -> None:
        reader, writer = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_run_worker, args=(str(job_path), str(log_path), writer, dict(os.environ), os.getcwd()))
        self._process.start()
        writer.close()
        self.pid = self._process.pid
        self.stdout: IO[str] = os.fdopen(os.dup(reader.fileno()), "r")
        reader.close()

    @property
    def returncode(self) -> int | None:
        code: int | None = self._process.exitcode
        return code

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0)
        self.stdout.close()
        return self._process.exitcode

    def terminate(self) -> None:
        self._process.terminate()

    def kill(self) -> None:
        self._process.kill()


class LocalRuntime:
    name = "local"

    def __init__(self, start: str = "fork") -> None:
        if start not in START_METHODS:
            raise ValueError(f"unknown start method {start!r}; one of {', '.join(START_METHODS)}")
        self.start = start

    def launch(self, job_path: Path, log_path: Path) -> subprocess.Popen[str] | ForkedWorker:
        if self.start == "fork":
            return ForkedWorker(fork_context(), Path(job_path).resolve(), Path(log_path).resolve())
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
