"""Snapshots of a game process: a worker killed at step 50,000 resumes from the game's last
snapshot, not from a replay of every step since the reset.

NLE and Crafter cannot save a game and load it again; a process can be copied. Every `every`
steps the game process (envs.game_process) forks: the child, a *holder*, keeps the game as it
was at that step, with a copy of the folders the game keeps on disk (NetHack's level files) and
the position of the game's log. It listens on a Unix socket with an unguessable abstract name,
written to `game-snapshot.json` in the episode folder, and waits.

A resumed worker (agent.prepare), before it imports any scaffold, asks the holder named there
for a *clone*: the holder forks again, so it stays as it was for a resume after this one. The
clone puts the game's folders back as they were, checks that the game log's first bytes are
the ones the game wrote up to the snapshot (sha256) and cuts the lines after them, checks the
trace's actions and observations against that log, then plays the trace's steps after the
snapshot, each observation checked against the trace (envs.server, op `resume`), as a replay
from the reset would. Anything that does not hold makes the worker replay from the reset as
before, and the resume record says why.

A holder ends when a newer snapshot of its episode replaces it, when the episode's game closes
its session (the episode is over: a killed game never does), or when `anchor` ends: the process
the worker was started by (the fork server, or the harness itself), so a stopped run leaves no
holder behind. Snapshots serve the workers one run relaunches; `--resume` of a run whose harness
was killed replays from the reset. The local runtime's caveat holds here too: a scaffold that
sets out to tamper with what its own user can reach (this socket, the log) needs the docker
runtime, where the game is in another container and keeps no snapshot.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import select
import shutil
import signal
import socket
import stat
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.envs.base import Observation, ReplayDiverged
from harness.envs.gamelog import GAME_LOG_FILE, GameLogError, LogPosition, last_session

if TYPE_CHECKING:
    from harness.envs.server import GameSession

SNAPSHOT_FILE = "game-snapshot.json"
EVERY_VARIABLE = "HARNESS_SNAPSHOT_EVERY"  # steps between snapshots; 0: none
EVERY_DEFAULT = 2000  # NetHack replays ~4,000 steps a second: the steps after a snapshot cost < 1 s
READY_TIMEOUT_S = 10.0
HOLDER_NAME = b"game-snapshot"  # the holder's process name (ps, tests)
CLONE_NAME = b"game-clone"  # a clone's
_PR_SET_NAME = 15


@dataclass(frozen=True)
class SnapshotPlan:
    """When a game process takes snapshots and how long they live."""

    every: int  # steps between snapshots
    anchor: int  # pid: a holder ends with this process
    registry: str  # the episode's game-snapshot.json


def plan_for(episode_dir: str | Path) -> SnapshotPlan | None:
    """The plan of a game process the worker is about to fork (None: no snapshots). Read in the
    worker before any scaffold code runs."""
    try:
        every = int(os.environ.get(EVERY_VARIABLE, EVERY_DEFAULT))
    except ValueError:
        every = EVERY_DEFAULT
    if every <= 0:
        return None
    return SnapshotPlan(every, os.getppid(), str(Path(episode_dir) / SNAPSHOT_FILE))


@dataclass(frozen=True)
class Held:
    """What a holder keeps beside the game's memory: the log's position, the game's folders."""

    log: LogPosition
    folders: list[tuple[str, str]]  # (the game's folder, its copy)


def take(session: GameSession, plan: SnapshotPlan, connection: socket.socket | None) -> bool:
    """Fork a holder of the game as it is now; returns once it is listening and registered
    (False: it did not come up). `connection`: the session's socket, closed in the holder."""
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_read)
        try:
            _hold(session, plan, connection, ready_write)
        except BaseException:
            traceback.print_exc()  # into the worker's log: the game goes on without this snapshot
        finally:
            os._exit(0)
    os.close(ready_write)
    _holders.add(pid)
    try:
        came_up = bool(select.select([ready_read], [], [], READY_TIMEOUT_S)[0]) and os.read(ready_read, 1) == b"1"
    finally:
        os.close(ready_read)
        _reap()
    return came_up


_holders: set[int] = set()  # the holders this process forked and has not collected


def _reap() -> None:
    """Collect this process's holders that ended (retired by a newer one)."""
    for pid in list(_holders):
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                _holders.discard(pid)
        except ChildProcessError:
            _holders.discard(pid)


def _hold(session: GameSession, plan: SnapshotPlan, connection: socket.socket | None, ready: int) -> None:
    os.setsid()  # out of the worker's process group: a kill of that group is the worker's, not the snapshot's
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # clones are reaped by the kernel
    _name_process(HOLDER_NAME)
    if connection is not None:
        os.close(connection.detach())  # (a close() would wait for the session's reader and writer)
    _close_pipes_and_sockets(keep=ready)
    assert session.log is not None
    position = session.log.position()
    session.log.detach()
    scratch = tempfile.mkdtemp(prefix="harness-snapshot-")
    try:
        held = Held(position, _copy_folders(session, scratch))
        try:
            anchor = os.pidfd_open(plan.anchor)
        except (OSError, AttributeError):
            return  # the run is over already (or no pidfd here: then no snapshot either)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            address = f"harness-snapshot-{secrets.token_hex(16)}"
            listener.bind("\0" + address)
            listener.listen(4)
            replaced = _register(plan.registry, address, session)
            os.write(ready, b"1")
            os.close(ready)
            if replaced:
                retire(replaced)
            _serve_clones(listener, anchor, session, plan, held, address)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _close_pipes_and_sockets(keep: int) -> None:
    """A holder keeps no pipe or socket it was born with open: whoever waits for their end (the
    worker for its game's, a harness reading a worker's output) must see it when their owner
    ends. Each is replaced by /dev/null rather than closed, so that its number is never reused:
    an object of the game's process that still names it may close it some day. Files stay (the
    game's data files, the worker's log)."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for name in os.listdir("/proc/self/fd"):
        try:
            mode = os.fstat(int(name)).st_mode
        except OSError:
            continue  # the listing's own descriptor, closed already
        if (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)) and int(name) != keep:
            os.dup2(devnull, int(name))
    os.close(devnull)


def _copy_folders(session: GameSession, scratch: str) -> list[tuple[str, str]]:
    folders = []
    for index, folder in enumerate(getattr(session.game, "disk_state", lambda: ())()):
        copy = os.path.join(scratch, str(index))
        shutil.copytree(folder, copy, symlinks=True)
        folders.append((folder, copy))
    return folders


def _register(registry: str, address: str, session: GameSession) -> str | None:
    """Name this holder in the episode's registry (atomically); returns the address it replaces."""
    replaced = read_registry(registry)
    entry = {"address": address, "step": session.played, "pid": os.getpid()}
    partial = f"{registry}.{os.getpid()}.partial"
    with open(partial, "w", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")
    os.replace(partial, registry)
    return str(replaced["address"]) if replaced else None


def read_registry(registry: str | Path) -> dict[str, Any] | None:
    """The episode's registered snapshot, or None."""
    try:
        entry = json.loads(Path(registry).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("address"), str) or not isinstance(entry.get("step"), int):
        return None
    return entry


def _serve_clones(listener: socket.socket, anchor: int, session: GameSession, plan: SnapshotPlan, held: Held,
                  address: str) -> None:  # fmt: skip
    while True:
        ready = select.select([listener.fileno(), anchor], [], [])[0]
        if anchor in ready:  # the run is over
            _unregister(plan.registry, address)
            return
        connection, _ = listener.accept()
        try:
            first = _first_line(connection)
        except OSError:
            connection.close()
            continue
        if first.strip() == b'{"op": "retire"}':
            connection.close()
            return
        if os.fork() == 0:
            listener.close()
            os.close(anchor)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _serve_clone(session, held, connection, first)
            os._exit(0)
        connection.close()


def _first_line(connection: socket.socket) -> bytes:
    """The first request, read byte by byte: what follows it is the clone's to read."""
    connection.settimeout(READY_TIMEOUT_S)
    line = bytearray()
    while not line.endswith(b"\n") and len(line) < 65536:
        byte = connection.recv(1)
        if not byte:
            break
        line += byte
    return bytes(line)


def _serve_clone(session: GameSession, held: Held, connection: socket.socket, first: bytes) -> None:
    """A clone: the game's folders as they were at the snapshot, then the session goes on."""
    from harness.envs.server import serve_connection

    _name_process(CLONE_NAME)
    connection.settimeout(None)
    for folder, copy in held.folders:
        os.makedirs(folder, exist_ok=True)
        for entry in os.scandir(folder):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        shutil.copytree(copy, folder, symlinks=True, dirs_exist_ok=True)
    session.restore_from(held.log)
    serve_connection(connection, session, first_line=first)


def _unregister(registry: str, address: str) -> None:
    entry = read_registry(registry)
    if entry is not None and entry["address"] == address:
        Path(registry).unlink(missing_ok=True)


def retire(address: str) -> None:
    """Ask the holder at `address` to end (gone already: nothing to do)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(READY_TIMEOUT_S)
            client.connect("\0" + address)
            client.sendall(b'{"op": "retire"}\n')
    except OSError:
        pass


def retire_registered(registry: str) -> None:
    """The episode is over: end its holder and remove its registry."""
    entry = read_registry(registry)
    if entry is not None:
        retire(str(entry["address"]))
        Path(registry).unlink(missing_ok=True)


def connect(address: str, timeout_s: float) -> socket.socket:
    """A connection to the holder at `address` (OSError when there is none)."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.settimeout(timeout_s)
        client.connect("\0" + address)
    except BaseException:
        client.close()
        raise
    return client


def resume(session: GameSession, actions: list[str], digests: list[str]) -> tuple[Observation, int]:
    """A clone continues an earlier attempt's trace (`actions`, `digests`: all its kept steps):
    the game log as the game wrote it up to the snapshot (else ValueError), the trace's steps
    before the snapshot as that log shows them (else ReplayDiverged), then the trace's steps
    after it played and checked as a replay's are. Returns the observation after the last kept
    step and the step the snapshot held."""
    if session.restored is None or session.log is None:
        raise PermissionError("resume is a snapshot's: this session was not restored from one, or has resumed")
    if len(actions) < session.played or len(digests) != len(actions):
        raise ValueError(f"the snapshot holds step {session.played}; the trace has {len(actions)} steps")
    kept = session.log.continue_at(session.restored)
    try:
        check_trace_against_log(kept, actions[: session.played], digests)
    except BaseException:
        session.log.detach()  # still a clone that plays nothing: the worker replays from the reset instead
        raise
    session.restored, from_step = None, session.played
    result = session.play_checked(actions[from_step:], digests[from_step:])
    observation = result.observation if result is not None else session.last_observation
    assert observation is not None
    return observation, from_step


def check_trace_against_log(log: bytes, actions: list[str], digests: list[str]) -> None:
    """The trace's first steps (`actions`, and `digests` of the observations before each trace
    step) are the last session of the game log `log` holds: its reset, then one line per action."""
    try:
        session = last_session(log.splitlines(keepends=True), GAME_LOG_FILE)
    except GameLogError as error:
        raise ReplayDiverged(f"the game log kept by the snapshot is not one: {error}") from error
    if session is None or session.reset["digest"] != (digests[0] if digests else None) \
            or len(session.steps) != len(actions):  # fmt: skip
        raise ReplayDiverged("the trace does not start as the game log kept by the snapshot")
    for index, (step, action) in enumerate(zip(session.steps, actions)):
        after = digests[index + 1] if index + 1 < len(digests) else step["digest"]
        if step["action"] != action or step["digest"] != after:
            raise ReplayDiverged(f"the trace's step {index} is not the one the game log kept by the snapshot shows")


def _name_process(name: bytes) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)
    except (OSError, AttributeError):
        pass
