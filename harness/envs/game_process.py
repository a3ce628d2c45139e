"""The game in its own process, where no env container hosts it (local and Ray workers).

The worker forks this process before it imports any scaffold code, so whatever a scaffold
patches at import (a game class, the env client) never reaches the game. The child serves one
bound episode (envs.server.EpisodeBinding: one task, one seed, one reset) over a socket pair and
keeps the game's own log (envs.gamelog), from which the episode is scored. It dies with the
worker (PR_SET_PDEATHSIG), so a worker the watchdog kills leaves no game behind; every few
thousand steps it keeps a snapshot of itself that outlives it (envs.snapshot), from which the
worker launched again resumes.

This keeps honest code honest and a patched import harmless; code that sets out to tamper
with files of its own user (the local runtime shares one) needs the docker runtime.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from harness.envs import make_env, snapshot
from harness.envs.base import GameEnv, TextVariant
from harness.envs.client import EnvClient
from harness.envs.server import EpisodeBinding, EpisodeService, serve_connection

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Be killed when the process `parent` ends (Linux), or end now if it already has."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the session's end (EOF) still ends the child
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(0)


class GameClient(EnvClient):
    """The worker's session on its game process."""

    def __init__(self, process: GameProcess, timeout_s: float) -> None:
        self.process = process
        try:
            super().__init__(f"game process {process.pid}", process.binding.task, timeout_s=timeout_s,
                             text=process.binding.text, connection=process.connection)  # fmt: skip
        except BaseException:
            process.close(grace_s=0.0)
            raise

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.process.close()


class GameProcess:
    """A forked game serving one episode; `client()` is the worker's only way to it."""

    def __init__(self, env: str, task: str, seed: int, text: TextVariant, game_log: str,
                 factory: Callable[..., GameEnv] = make_env) -> None:  # fmt: skip
        self.binding = EpisodeBinding(task, seed, text, game_log)
        snapshots = snapshot.plan_for(Path(game_log).parent)  # read here: no scaffold code has run yet
        parent_end, child_end = socket.socketpair()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the game's process: nothing of the worker's but the game's code runs here
            code = 0
            try:
                parent_end.close()
                die_with_parent(parent)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)  # the worker's stdout carries its events: the game writes none
                os.close(devnull)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the harness's to handle
                serve_connection(child_end, EpisodeService(env, self.binding, factory, snapshots))
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        child_end.close()
        self.pid, self.connection = pid, parent_end

    def client(self, timeout_s: float = 120.0) -> GameClient:
        """The session on this game (its task and text variant are the bound ones); closing
        it ends and reaps the process."""
        return GameClient(self, timeout_s)

    def close(self, grace_s: float = 5.0) -> None:
        """Reap the process (it ends when its session closes); kill it past `grace_s`."""
        self.connection.close()
        deadline = time.monotonic() + grace_s
        try:
            while time.monotonic() < deadline:
                if os.waitpid(self.pid, os.WNOHANG)[0] == self.pid:
                    return
                time.sleep(0.01)
        except ChildProcessError:
            return  # reaped already
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
