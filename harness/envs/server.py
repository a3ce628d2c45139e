"""The env server: one game as a small TCP service speaking newline-delimited JSON.

Each connection is one session holding its own game instance. Requests and replies are one
JSON object per line:

    {"op": "make", "task": "MazeWalk-9x9"}  -> {"ok": true, "spec": {...}}
    {"op": "reset", "seed": 3}              -> {"ok": true, "observation": {"text": ...}}
    {"op": "step", "action": "north"}       -> {"ok": true, "result": {...}}
    {"op": "replay", "actions": [...], "digests": [...]}
                                            -> {"ok": true, "result": {...} or null}
    {"op": "resume", "actions": [...], "digests": [...]}
                                            -> {"ok": true, "observation": {...}, "from_step": K}
                                               (a clone of a game's snapshot only: envs.snapshot)
    {"op": "lock"}                          -> {"ok": true}   (no reset from now on)
    {"op": "info"}                          -> {"ok": true, "env": ..., "tasks": [...], ...}
    {"op": "close"}                         -> {"ok": true}   (and the session ends)

A failed request answers {"ok": false, "error": {"type", "message", ...}} and the session goes
on; a client that disconnects only ends its own session. The game's raw arrays stay on the
server (sending them costs more than the step itself).
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.envs import make_env, snapshot, tasks_of
from harness.envs.base import (
    STANDARD_TEXT,
    GameEnv,
    InvalidActionError,
    Observation,
    ReplayDiverged,
    StepResult,
    TextVariant,
)
from harness.envs.gamelog import GameLog, LogPosition, observation_digest

PROTOCOL_VERSION = 1


def observation_to_json(observation: Observation) -> dict[str, str]:
    """The observation's text, and its short-lived part when it has one."""
    return {"text": observation.text, **({"short_lived": observation.short_lived} if observation.short_lived else {})}


def step_result_to_json(result: StepResult) -> dict[str, Any]:
    return {
        "observation": observation_to_json(result.observation),
        "reward": result.reward,
        "done": result.done,
        "truncated": result.truncated,
        "progression": result.progression,
        "info": result.info,
    }


@dataclass(frozen=True)
class EpisodeBinding:
    """A server bound to one episode: the only task, seed and text it plays, and the game log it
    keeps (envs.gamelog). Resets are refused once the session is locked (the worker locks it
    before it imports the scaffold): the scaffold's process can neither restart the game to
    look ahead nor play a game the log does not show."""

    task: str
    seed: int
    text: TextVariant
    game_log: str


class GameSession:
    """One client's session: its game, and the answer to each request line."""

    def __init__(self, service: _EnvService) -> None:
        self.service = service
        self.game: GameEnv | None = None
        binding = service.binding
        self.log = GameLog(binding.game_log) if binding else None
        self.locked = False  # no reset once locked
        self.shown: str | None = None  # the text of the observation the game showed last
        self.last_observation: Observation | None = None  # and the observation itself
        self.played = 0  # steps since the reset
        self.snapshots = service.snapshots
        self.connection: socket.socket | None = None  # the client's (serve_connection), closed in a snapshot
        self.restored: LogPosition | None = None  # a clone of a snapshot, until its `resume`

    def answer(self, line: bytes) -> tuple[dict[str, Any], bool]:
        """The reply to one request, and whether the session goes on."""
        try:
            request = json.loads(line)
            op = request.get("op")
            if self.restored is not None and op not in ("make", "resume", "info", "close"):
                raise PermissionError("a snapshot's clone plays nothing before its resume")
            if op == "step":
                action = request["action"]
                result = self._game().step(action)
                self._played(action, result)
                return {"ok": True, "result": step_result_to_json(result)}, True
            if op == "replay":
                last = self._replay([str(a) for a in request["actions"]], [str(d) for d in request["digests"]])
                return {"ok": True, "result": step_result_to_json(last) if last else None}, True
            if op == "resume":
                observation, from_step = snapshot.resume(self, [str(a) for a in request["actions"]],
                                                         [str(d) for d in request["digests"]])  # fmt: skip
                return {"ok": True, "observation": observation_to_json(observation), "from_step": from_step}, True
            if op == "reset":
                return {"ok": True, "observation": observation_to_json(self._reset(int(request["seed"])))}, True
            if op == "make":
                self._make(request.get("task"), TextVariant(**request.get("text") or {}))
                assert self.game is not None
                return {"ok": True, "spec": asdict(self.game.spec)}, True
            if op == "lock":
                self.locked = True
                return {"ok": True}, True
            if op == "info":
                return {"ok": True, **self.service.describe()}, True
            if op == "close":
                if self.snapshots is not None:  # the episode is over: its snapshot has nothing left to serve
                    snapshot.retire_registered(self.snapshots.registry)
                return {"ok": True}, False
            raise ValueError(f"unknown op {op!r}; ops: make, reset, step, replay, resume, lock, info, close")
        except ReplayDiverged as error:
            return {"ok": False, "error": {"type": "ReplayDiverged", "message": str(error)}}, True
        except InvalidActionError as error:
            return {"ok": False, "error": {"type": "InvalidActionError", "message": str(error),
                                           "action": error.action, "valid_actions": error.valid_actions}}, True  # fmt: skip
        except Exception as error:  # a game crash is reported to the client, not fatal here
            details = "".join(traceback.format_exception_only(type(error), error)).strip()
            return {"ok": False, "error": {"type": type(error).__name__, "message": details}}, True

    def _make(self, task: str | None, text: TextVariant) -> None:
        binding = self.service.binding
        if binding is not None and self.restored is not None and task in (None, binding.task) and text == binding.text:
            return  # a snapshot's clone: the game is the one its session made
        if binding is not None:
            if self.game is not None:
                raise PermissionError("this env server plays one episode: its game is made once")
            if task not in (None, binding.task) or text != binding.text:
                raise PermissionError(f"this env server plays {binding.task} with text {binding.text.to_json()}, "
                                      f"not {task} with {text.to_json()}")  # fmt: skip
            task = binding.task
        if self.game is not None:
            self.game.close()
        # a factory of another kind (tests, benches) need not know text variants
        extra = {} if text.is_standard else {"text": text}
        self.game = self.service.factory(self.service.env_name, task, **extra)

    def _reset(self, seed: int) -> Observation:
        binding = self.service.binding
        if self.locked:
            raise PermissionError("this session is locked: the game cannot be reset once the scaffold runs")
        if binding is not None and seed != binding.seed:
            raise PermissionError(f"this env server plays seed {binding.seed}, not {seed}")
        observation = self._game().reset(seed)
        self.shown, self.last_observation, self.played = observation.text, observation, 0
        if self.log is not None and binding is not None:
            self.log.reset(self.service.env_name, binding.task, seed, binding.text, observation.text)
        return observation

    def _replay(self, actions: list[str], digests: list[str]) -> StepResult | None:
        """An earlier attempt's actions played again in one request, right after the reset: the
        observation before each is checked against the trace's digest of it (`digests`, one per
        action), and each step is logged as it is played. Returns the last step's result."""
        if self.shown is None or self.played:
            raise PermissionError("a replay plays from the reset: reset the game first, and play nothing before it")
        return self.play_checked(actions, digests)

    def play_checked(self, actions: list[str], digests: list[str]) -> StepResult | None:
        """Play `actions`, the observation before each checked against `digests` (ReplayDiverged)."""
        if len(digests) != len(actions):
            raise ValueError(f"a replay takes one digest per action: {len(actions)} actions, {len(digests)} digests")
        game, result, first = self._game(), None, self.played
        shown = observation_digest(self.shown or "")
        for index, (action, digest) in enumerate(zip(actions, digests)):
            if shown != digest:
                raise ReplayDiverged(f"the replayed observation before step {first + index} differs from the trace")
            result = game.step(action)
            shown = self._played(action, result) or observation_digest(self.shown or "")
        return result

    def _played(self, action: str, result: StepResult) -> str | None:
        """A step the game played: logged, shown, and every `every` steps kept in a snapshot.
        Returns the digest of the observation the log wrote (None: no log)."""
        digest = self.log.step(action, result) if self.log is not None else None
        self.shown, self.last_observation, self.played = result.observation.text, result.observation, self.played + 1
        if self.snapshots is not None and self.played % self.snapshots.every == 0:
            snapshot.take(self, self.snapshots, self.connection)
        return digest

    def restore_from(self, position: LogPosition) -> None:
        """This session is a clone of a snapshot taken at `position` of the game log (envs.snapshot)."""
        self.restored = position

    def _game(self) -> GameEnv:
        if self.game is None:
            self._make(None, self.service.binding.text if self.service.binding else STANDARD_TEXT)
        assert self.game is not None
        return self.game

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
        if self.game is not None:
            self.game.close()
            self.game = None


def serve_connection(connection: socket.socket, service: _EnvService | GameSession, first_line: bytes = b"") -> None:
    """Answer one client on `connection` until it closes the session or goes away. `service`:
    a new session's, or a session that goes on (a snapshot's clone, whose first request was read:
    `first_line`)."""
    session = service if isinstance(service, GameSession) else GameSession(service)
    session.connection = connection
    reader, writer = connection.makefile("rb"), connection.makefile("wb")
    try:
        while True:
            line, first_line = first_line or reader.readline(), b""
            if not line:
                break
            reply, keep_going = session.answer(line)
            writer.write(json.dumps(reply).encode() + b"\n")
            writer.flush()
            if not keep_going:
                break
    except (ConnectionError, OSError):
        pass  # the client went away: only this session ends
    finally:
        session.close()
        reader.close()
        writer.close()


class _Session(socketserver.BaseRequestHandler):
    server: EnvServer

    def handle(self) -> None:
        if self.request.family in (socket.AF_INET, socket.AF_INET6):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        serve_connection(self.request, self.server)


class _EnvService:
    """What both server kinds share: the env they serve and how they make its games."""

    env_name: str
    factory: Callable[..., GameEnv]
    binding: EpisodeBinding | None = None
    snapshots: snapshot.SnapshotPlan | None = None  # a bound episode's game process keeps snapshots

    def _setup(self, env_name: str, factory: Callable[..., GameEnv], binding: EpisodeBinding | None = None) -> None:
        if factory is make_env:
            tasks_of(env_name)  # fail early on an unknown env
        self.env_name, self.factory, self.binding = env_name, factory, binding

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


class EpisodeService(_EnvService):
    """The service of one bound episode, for a single connection (no listening server);
    `snapshots`: when its game process keeps snapshots of the game (envs.snapshot)."""

    def __init__(self, env_name: str, binding: EpisodeBinding, factory: Callable[..., GameEnv] = make_env,
                 snapshots: snapshot.SnapshotPlan | None = None) -> None:  # fmt: skip
        self._setup(env_name, factory, binding)
        self.snapshots = snapshots


def serve_episode(env_name: str, binding: EpisodeBinding, unix: str, factory: Callable[..., GameEnv] = make_env) -> None:
    """Serve one episode to the first client of the Unix socket `unix`, then exit: the socket
    file is removed once that client is in, so nobody else (the scaffold) can connect."""
    service = EpisodeService(env_name, binding, factory)
    Path(unix).unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(unix + ".new")
        listener.listen(1)
        os.chmod(unix + ".new", 0o777)  # the agent container's user may differ
        os.replace(unix + ".new", unix)  # the file appears once a connection would be accepted
        print(f"harness env server: {env_name} {binding.task} seed {binding.seed} listening on unix:{unix}", flush=True)
        connection, _ = listener.accept()
    Path(unix).unlink(missing_ok=True)
    with connection:
        serve_connection(connection, service)


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
