"""Snapshots of a game process (envs.snapshot): a game killed after its snapshot comes back from
it, plays on as the uninterrupted game does and leaves the same game log; a snapshot that does
not agree with the log or the trace is refused; the episode's end leaves no holder behind."""

import glob
import os
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from harness.envs import snapshot
from harness.envs.base import STANDARD_TEXT, EnvError, Observation, ReplayDiverged
from harness.envs.client import EnvClient
from harness.envs.game_process import GameClient, GameProcess
from harness.envs.gamelog import GAME_LOG_FILE, observation_digest

GAMES = [("crafter", "crafter"), ("nethack", "NetHackChallenge-v0")]
SEED = 3


@dataclass
class Played:
    """A game played through its process, with the trace a worker would keep."""

    process: GameProcess
    client: GameClient
    actions: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)  # of the observation before each action
    observations: list[Observation] = field(default_factory=list)  # after the reset, then after each step

    def play(self, steps: int) -> None:
        for _ in range(steps):
            action = self.client.spec.actions[(len(self.actions) * 5) % 16]
            self.actions.append(action)
            self.digests.append(observation_digest(self.observations[-1].text))
            self.observations.append(self.client.step(action).observation)


def _start(folder: Path, env: str, task: str) -> Played:
    folder.mkdir(parents=True, exist_ok=True)
    process = GameProcess(env, task, SEED, STANDARD_TEXT, str(folder / GAME_LOG_FILE))
    client = process.client(timeout_s=60)
    played = Played(process, client, observations=[client.reset(SEED)])
    client.lock()
    return played


def _kill(played: Played) -> None:
    os.kill(played.process.pid, signal.SIGKILL)
    os.waitpid(played.process.pid, 0)


def _clone(folder: Path, task: str) -> tuple[EnvClient, dict]:
    entry = snapshot.read_registry(folder / snapshot.SNAPSHOT_FILE)
    assert entry is not None
    return EnvClient("a snapshot", task, timeout_s=60, connection=snapshot.connect(entry["address"], 60)), entry


def _gone(pid: int, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(autouse=True)
def every_three_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(snapshot.EVERY_VARIABLE, "3")


@pytest.mark.parametrize("env,task", GAMES)
def test_a_killed_game_comes_back_from_its_snapshot_and_plays_on_as_the_uninterrupted_one(
        tmp_path: Path, env: str, task: str) -> None:  # fmt: skip
    killed = _start(tmp_path / "killed", env, task)
    killed.play(7)  # snapshots after steps 3 and 6
    _kill(killed)
    clone, entry = _clone(tmp_path / "killed", task)
    assert entry["step"] == 6
    observation, from_step = clone.resume(killed.actions, killed.digests)
    assert from_step == 6 and observation == killed.observations[-1]  # step 7 played again, checked
    later = [clone.step(killed.client.spec.actions[(index * 5) % 16]).observation for index in range(7, 12)]
    clone.close()

    whole = _start(tmp_path / "whole", env, task)
    whole.play(12)
    whole.client.close()
    assert later == whole.observations[8:]
    assert (tmp_path / "killed" / GAME_LOG_FILE).read_bytes() == (tmp_path / "whole" / GAME_LOG_FILE).read_bytes()
    assert not (tmp_path / "killed" / snapshot.SNAPSHOT_FILE).exists()  # the episode is over: its holder retired
    assert _gone(entry["pid"])


def test_a_game_log_changed_since_the_snapshot_is_refused(tmp_path: Path) -> None:
    killed = _start(tmp_path, "crafter", "crafter")
    killed.play(4)
    _kill(killed)
    log = tmp_path / GAME_LOG_FILE
    log.write_bytes(log.read_bytes().replace(b'"progression": 0.0', b'"progression": 1.0', 1))
    clone, entry = _clone(tmp_path, "crafter")
    with pytest.raises(EnvError, match="is not what the game wrote up to its snapshot"):
        clone.resume(killed.actions, killed.digests)
    clone.close()
    assert _gone(entry["pid"])


def test_a_trace_that_differs_from_the_log_before_the_snapshot_is_refused(tmp_path: Path) -> None:
    killed = _start(tmp_path, "crafter", "crafter")
    killed.play(4)
    _kill(killed)
    clone, _ = _clone(tmp_path, "crafter")
    actions = list(killed.actions)
    actions[1] = next(a for a in clone.spec.actions if a != actions[1])
    with pytest.raises(ReplayDiverged, match="the trace's step 1 is not the one the game log"):
        clone.resume(actions, killed.digests)
    clone.close()


def test_the_holder_stays_as_it_was_for_the_next_resume(tmp_path: Path) -> None:
    """Each resume gets a clone: the first clone's steps do not reach the snapshot it came from."""
    killed = _start(tmp_path, "crafter", "crafter")
    killed.play(4)
    _kill(killed)
    first, entry = _clone(tmp_path, "crafter")
    first.resume(killed.actions, killed.digests)
    first.step(first.spec.actions[0])
    os.kill(next(p.pid for p in psutil.Process(entry["pid"]).children()), signal.SIGKILL)  # as a worker dies
    second, _ = _clone(tmp_path, "crafter")
    observation, from_step = second.resume(killed.actions, killed.digests)
    assert (observation, from_step) == (killed.observations[-1], 3)
    second.close()


def test_nethacks_files_come_back_as_they_were_at_the_snapshot(tmp_path: Path) -> None:
    """NetHack keeps levels the hero left in files: the clone finds the game's folder as the
    snapshot copied it, not as the killed game left it."""
    pattern = os.path.join(tempfile.gettempdir(), "nle*")  # where NLE makes its game's folder
    before = set(glob.glob(pattern))
    killed = _start(tmp_path, "nethack", "NetHackChallenge-v0")
    (folder,) = set(glob.glob(pattern)) - before
    killed.play(4)  # snapshot after step 3
    saved = {name: (Path(folder) / name).read_bytes() for name in os.listdir(folder) if (Path(folder) / name).is_file()}
    (Path(folder) / "left-by-a-later-step").write_text("a level the snapshot never saw")
    _kill(killed)
    clone, _ = _clone(tmp_path, "NetHackChallenge-v0")
    clone.resume(killed.actions, killed.digests)
    assert not (Path(folder) / "left-by-a-later-step").exists()
    assert {name: (Path(folder) / name).read_bytes() for name in saved} == saved
    clone.close()


def test_a_holder_ends_with_its_anchor(tmp_path: Path) -> None:
    """A stopped run leaves no holder: it ends when the process the worker was started by ends."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    ready = context.Event()
    anchor = context.Process(target=ready.wait)  # stands for the fork server the worker came from
    anchor.start()
    plan = snapshot.SnapshotPlan(3, anchor.pid, str(tmp_path / snapshot.SNAPSHOT_FILE))
    from harness.envs.server import EpisodeBinding, EpisodeService, GameSession

    service = EpisodeService("crafter", EpisodeBinding("crafter", SEED, STANDARD_TEXT, str(tmp_path / GAME_LOG_FILE)),
                             snapshots=plan)  # fmt: skip
    session = GameSession(service)
    try:
        assert session.answer(b'{"op": "reset", "seed": 3}')[0]["ok"]
        for _ in range(3):
            assert session.answer(b'{"op": "step", "action": "Noop"}')[0]["ok"]
        entry = snapshot.read_registry(plan.registry)
        assert entry is not None and entry["step"] == 3
    finally:
        ready.set()
        anchor.join()
        session.close()
    assert _gone(entry["pid"])
    assert not Path(plan.registry).exists()


@pytest.mark.slow
def test_a_worker_killed_in_a_run_resumes_from_its_games_snapshot(tmp_path: Path) -> None:
    """Through `harness eval`: a killed worker is launched again and its game comes back from the
    snapshot (its resume record says at which step); the episode ends as the uninterrupted one,
    the run verifies, and no holder outlives the run."""
    import subprocess
    import sys

    from test_resume import SEED as SEED_SUBMISSION
    from test_resume import _eval, _finish, _wait_for_steps, _workers

    from harness.models.scripted import ScriptedModelServer, answer_by_content
    from harness.runs.fingerprint import episode_fingerprint
    from harness.runs.read import read_run

    with ScriptedModelServer(answer_by_content, owned_by="vllm") as server:
        server.latency_s = 0.05
        _finish(_eval(tmp_path / "whole", server.url, SEED_SUBMISSION, steps=16))
        running = _eval(tmp_path / "killed", server.url, SEED_SUBMISSION, steps=16)
        _wait_for_steps(tmp_path / "killed", 10, running)
        victim = _workers(running)[0]
        folder = Path(victim.cwd())
        victim.kill()
        _finish(running)
    whole, resumed = read_run(tmp_path / "whole" / "run"), read_run(tmp_path / "killed" / "run")
    episode = next(e for e in resumed.episodes() if resumed.episode_folder(e) == folder)
    (resume,) = episode.resumes
    assert resume.continued and resume.snapshot_step is not None, resume
    assert resume.snapshot_step % 3 == 0 and 9 <= resume.snapshot_step <= resume.from_step, resume
    assert f"from its snapshot at step {resume.snapshot_step}" in resume.reason
    twin = whole.episode_folder(next(e for e in whole.episodes() if e.key == episode.key))
    assert episode_fingerprint(folder) == episode_fingerprint(twin)
    assert (folder / GAME_LOG_FILE).read_bytes() == (twin / GAME_LOG_FILE).read_bytes()
    assert not list((tmp_path / "killed").rglob(snapshot.SNAPSHOT_FILE))
    verify = subprocess.run([sys.executable, "-m", "harness.cli", "verify", str(tmp_path / "killed" / "run")],
                            capture_output=True, text=True)  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    holders = [p for p in psutil.process_iter(["name"]) if p.info["name"] in ("game-snapshot", "game-clone")]
    assert all(_gone(p.pid) for p in holders), [p.pid for p in holders]


def test_a_clone_plays_nothing_before_its_resume(tmp_path: Path) -> None:
    killed = _start(tmp_path, "crafter", "crafter")
    killed.play(3)
    _kill(killed)
    clone, _ = _clone(tmp_path, "crafter")
    with pytest.raises(EnvError, match="plays nothing before its resume"):
        clone.step(clone.spec.actions[0])
    observation, from_step = clone.resume(killed.actions, killed.digests)  # the game did not move
    assert (observation, from_step) == (killed.observations[-1], 3)
    clone.close()
