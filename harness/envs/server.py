"""The env server: one game as a small TCP service speaking newline-delimited JSON.

Each connection is one session holding its own game instance. Requests and replies are one
JSON object per line:

    {"op": "make", "task": "MazeWalk-9x9"}  -> {"ok": true, "spec": {...}}
    {"op": "reset", "seed": 3}              -> {"ok": true, "observation": {"text": ...}}
    {"op": "step", "action": "north"}       -> {"ok": true, "result": {...}}
    {"op": "info"}                          -> {"ok": true, "env": ..., "tasks": [...], ...}
    {"op": "close"}                         -> {"ok": true}   (and the session ends)

A failed request answers {"ok": false, "error": {"type", "message", ...}} and the session goes
on; a client that disconnects only ends its own session. The game's raw arrays stay on the
server (sending them costs more than the step itself).
"""

from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.envs import make_env, tasks_of
from harness.envs.base import GameEnv, InvalidActionError, StepResult, TextVariant
from harness.envs.wire import wait_readable

PROTOCOL_VERSION = 1


def step_result_to_json(result: StepResult) -> dict[str, Any]:
    return {
        "observation": {"text": result.observation.text},
        "reward": result.reward,
        "done": result.done,
        "truncated": result.truncated,
        "progression": result.progression,
        "info": result.info,
    }


class _Session(socketserver.StreamRequestHandler):
    server: EnvServer

    def setup(self) -> None:
        super().setup()
        if self.connection.family in (socket.AF_INET, socket.AF_INET6):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.game: GameEnv | None = None

    def handle(self) -> None:
        try:
            while True:
                wait_readable(self.connection)
                line = self.rfile.readline()
                if not line:
                    break
                reply, keep_going = self._answer(line)
                self.wfile.write(json.dumps(reply).encode() + b"\n")
                self.wfile.flush()
                if not keep_going:
                    break
        except (ConnectionError, OSError):
            pass  # the client went away: only this session ends
        finally:
            if self.game is not None:
                self.game.close()

    def _answer(self, line: bytes) -> tuple[dict[str, Any], bool]:
        try:
            request = json.loads(line)
            op = request.get("op")
            if op == "step":
                return {"ok": True, "result": step_result_to_json(self._game().step(request["action"]))}, True
            if op == "reset":
                observation = self._game().reset(int(request["seed"]))
                return {"ok": True, "observation": {"text": observation.text}}, True
            if op == "make":
                if self.game is not None:
                    self.game.close()
                text = TextVariant(**request.get("text") or {})
                # a factory of another kind (tests, benches) need not know text variants
                extra = {} if text.is_standard else {"text": text}
                self.game = self.server.factory(self.server.env_name, request.get("task"), **extra)
                return {"ok": True, "spec": asdict(self.game.spec)}, True
            if op == "info":
                return {"ok": True, **self.server.describe()}, True
            if op == "close":
                return {"ok": True}, False
            raise ValueError(f"unknown op {op!r}; ops: make, reset, step, info, close")
        except InvalidActionError as error:
            return {"ok": False, "error": {"type": "InvalidActionError", "message": str(error),
                                           "action": error.action, "valid_actions": error.valid_actions}}, True  # fmt: skip
        except Exception as error:  # a game crash is reported to the client, not fatal here
            details = "".join(traceback.format_exception_only(type(error), error)).strip()
            return {"ok": False, "error": {"type": type(error).__name__, "message": details}}, True

    def _game(self) -> GameEnv:
        if self.game is None:
            self.game = self.server.factory(self.server.env_name, None)
        return self.game


class _EnvService:
    """What both server kinds share: the env they serve and how they make its games."""

    env_name: str
    factory: Callable[..., GameEnv]

    def _setup(self, env_name: str, factory: Callable[..., GameEnv]) -> None:
        if factory is make_env:
            tasks_of(env_name)  # fail early on an unknown env
        self.env_name, self.factory = env_name, factory

    def describe(self) -> dict[str, Any]:
        tasks = list(tasks_of(self.env_name)) if self.factory is make_env else []
        return {"env": self.env_name, "tasks": tasks, "protocol": PROTOCOL_VERSION}

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, daemon=True)  # type: ignore[attr-defined]
        thread.start()
        return thread


class EnvServer(_EnvService, socketserver.ThreadingTCPServer):
    """Serves one env (any of its tasks) over TCP, one game instance per connection."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, env_name: str, host: str = "127.0.0.1", port: int = 0,
                 factory: Callable[[str, str | None], GameEnv] = make_env) -> None:  # fmt: skip
        self._setup(env_name, factory)
        super().__init__((host, port), _Session)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server_address[:2]
        return str(host), int(port)


class UnixEnvServer(_EnvService, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The same service on a Unix socket: for sandboxes that have no network at all."""

    daemon_threads = True

    def __init__(self, env_name: str, path: str, factory: Callable[[str, str | None], GameEnv] = make_env) -> None:
        self._setup(env_name, factory)
        Path(path).unlink(missing_ok=True)
        super().__init__(path, _Session)


def serve(
    env_name: str,
    host: str = "127.0.0.1",
    port: int = 0,
    factory: Callable[[str, str | None], GameEnv] = make_env,
    unix: str | None = None,
) -> None:
    """Run the server until interrupted; prints its address on the first line of stdout."""
    server: socketserver.BaseServer = UnixEnvServer(env_name, unix, factory) if unix else EnvServer(env_name, host, port, factory)
    with server:
        where = f"unix:{unix}" if unix else ":".join(map(str, server.address))  # type: ignore[attr-defined]
        print(f"harness env server: {env_name} listening on {where}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("harness env server: stopped", file=sys.stderr)


class ServerProcess:
    """`harness env serve ENV` as a child process; `address` is known once it listens.

    `command` replaces the serving command (it must print the same first line).
    """

    def __init__(
        self,
        env_name: str,
        host: str = "127.0.0.1",
        startup_timeout_s: float = 60.0,
        command: list[str] | None = None,
    ) -> None:
        import subprocess

        self.process = subprocess.Popen(
            command or [sys.executable, "-m", "harness.cli", "env", "serve", env_name, "--host", host],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        first_line = _readline_with_timeout(self.process.stdout, startup_timeout_s)
        if " listening on " not in first_line:
            self.stop()
            raise RuntimeError(f"env server for {env_name} did not start: {first_line!r}")
        self.address = first_line.strip().rsplit(" ", 1)[-1]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except Exception:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _readline_with_timeout(stream: Any, timeout_s: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    return result[0] if result else ""
