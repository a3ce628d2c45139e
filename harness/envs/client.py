"""A GameEnv that plays a game hosted by an env server (`harness env serve`)."""

from __future__ import annotations

import json
import socket
from typing import Any

from harness.envs.base import (
    STANDARD_TEXT,
    EnvError,
    InvalidActionError,
    Observation,
    ReplayDiverged,
    StepResult,
    TaskSpec,
    TextVariant,
    check_action,
)

REPLAY_S_PER_STEP = 0.01  # a replay's allowance beyond one request's deadline, per step


def observation_from_json(data: dict[str, Any]) -> Observation:
    text, short_lived = str(data["text"]), str(data.get("short_lived") or "")
    if short_lived and not text.startswith(short_lived + "\n"):
        raise EnvError("the env server sent an observation whose short-lived part does not start its text")
    return Observation(text=text, short_lived=short_lived)


def _step_result(result: dict[str, Any]) -> StepResult:
    return StepResult(
        observation=observation_from_json(result["observation"]),
        reward=float(result["reward"]),
        done=bool(result["done"]),
        truncated=bool(result["truncated"]),
        progression=float(result["progression"]),
        info=result["info"],
    )


def parse_address(address: str) -> tuple[str, int]:
    """'host:port' -> (host, port)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"env server address must be HOST:PORT, got {address!r}")
    return host, int(port)


class EnvClient:
    """One session on an env server (HOST:PORT or unix:PATH); the GameEnv interface.

    Every request has a deadline (`timeout_s`): a dead or hung server gives EnvError, never a
    hang. Invalid actions are refused locally, before any round trip.
    """

    def __init__(self, address: str, task: str | None = None, timeout_s: float = 120.0,
                 text: TextVariant = STANDARD_TEXT, connection: socket.socket | None = None) -> None:  # fmt: skip
        """`connection`: a socket already open to the server (a game process's socket pair);
        `address` then only names it in errors."""
        self.address = address
        try:
            if connection is not None:
                self._socket = connection
                self._socket.settimeout(timeout_s)
            elif address.startswith("unix:"):
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._socket.settimeout(timeout_s)
                self._socket.connect(address[len("unix:"):])
            else:
                self._socket = socket.create_connection(parse_address(address), timeout=timeout_s)
                self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as error:
            raise EnvError(f"cannot reach the env server at {address}: {error}") from error
        self._reader = self._socket.makefile("rb")
        reply = self._request({"op": "make", "task": task, "text": text.to_json()})
        spec = reply["spec"]
        self.spec = TaskSpec(
            env=spec["env"],
            name=spec["name"],
            actions=tuple(spec["actions"]),
            default_action=spec["default_action"],
            instructions=spec["instructions"],
        )

    def _request(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            self._socket.sendall(json.dumps(message).encode() + b"\n")
            line = self._reader.readline()
        except TimeoutError as error:
            raise EnvError(f"the env server at {self.address} did not answer in time") from error
        except OSError as error:
            raise EnvError(f"lost the env server at {self.address}: {error}") from error
        if not line:
            raise EnvError(
                f"the env server at {self.address} closed the connection (did it crash or stop?)"
            )
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            failure = reply.get("error", {})
            if failure.get("type") == "InvalidActionError":
                raise InvalidActionError(failure["action"], failure["valid_actions"])
            if failure.get("type") == "ReplayDiverged":
                raise ReplayDiverged(failure.get("message", "the replay diverged"))
            raise EnvError(f"env server {self.address}: {failure.get('message', reply)}")
        return reply

    def reset(self, seed: int) -> Observation:
        reply = self._request({"op": "reset", "seed": int(seed)})
        return observation_from_json(reply["observation"])

    def step(self, action: str) -> StepResult:
        check_action(self.spec, action)
        return _step_result(self._request({"op": "step", "action": action})["result"])

    def replay(self, actions: list[str], digests: list[str]) -> StepResult | None:
        """Play an earlier attempt's actions in one request, right after the reset, each
        observation before an action checked against `digests` (the trace's); returns the last
        step's result (None: no actions). Raises ReplayDiverged at the first difference."""
        reply = self._replaying({"op": "replay", "actions": actions, "digests": digests})
        return None if reply["result"] is None else _step_result(reply["result"])

    def resume(self, actions: list[str], digests: list[str]) -> tuple[Observation, int]:
        """On a clone of the game's snapshot (envs.snapshot): continue an earlier attempt's trace
        (all its kept steps' actions and observation digests). Returns the observation after
        the last one and the step the snapshot held (the steps after it were played again)."""
        reply = self._replaying({"op": "resume", "actions": actions, "digests": digests})
        return observation_from_json(reply["observation"]), int(reply["from_step"])

    def _replaying(self, request: dict[str, Any]) -> dict[str, Any]:
        """A request that plays recorded actions: its deadline grows with their number."""
        for action in request["actions"]:
            check_action(self.spec, action)
        timeout = self._socket.gettimeout()
        self._socket.settimeout(None if timeout is None else timeout + REPLAY_S_PER_STEP * len(request["actions"]))
        try:
            return self._request(request)
        finally:
            self._socket.settimeout(timeout)

    def lock(self) -> None:
        """No reset from now on (the worker locks its game before the scaffold runs)."""
        self._request({"op": "lock"})

    def info(self) -> dict[str, Any]:
        return self._request({"op": "info"})

    def close(self) -> None:
        try:
            self._request({"op": "close"})
        except EnvError:
            pass  # closing a session on a server that is already gone is not an error
        finally:
            self._reader.close()
            self._socket.close()
