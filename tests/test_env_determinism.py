"""Exact seeding: the same seed and actions give byte-identical games in a fresh process.

Each trajectory is played here, then replayed by `python -m harness.envs.replay` in a new
process whose heap is shifted (so id()-ordered iteration would differ) and compared by hash.
"""

import json
import random
import shutil
import subprocess
import sys
import textwrap

import pytest

from harness.envs import make_env
from harness.envs.replay import replay

STEPS = 250


def _replay_in_fresh_process(request: dict[str, object]) -> dict[str, object]:
    completed = subprocess.run(
        [sys.executable, "-m", "harness.envs.replay"],
        input=json.dumps(request), capture_output=True, text=True, check=True, timeout=300,
    )
    return json.loads(completed.stdout)


def _actions(env: str, task: str | None, seed: int) -> list[str]:
    """Random play that keeps the game moving (mostly moves, some other commands)."""
    spec = make_env(env, task).spec
    rng = random.Random(seed)
    moves = [a for a in spec.actions if a.split()[-1] in ("North", "South", "East", "West", "north", "south", "east", "west")]
    return [rng.choice(moves) if rng.random() < 0.8 else rng.choice(spec.actions) for _ in range(STEPS)]


CASES = [
    ("crafter", None),
    ("minihack", "Boxoban-Medium"),
    ("minihack", "MazeWalk-15x15"),
    ("minihack", "Quest-Medium"),
    ("nethack", None),
]


@pytest.mark.parametrize(("env", "task"), CASES)
def test_replay_in_a_fresh_process_gives_identical_observations_and_rewards(env: str, task: str | None) -> None:
    actions = _actions(env, task, seed=11)
    here = replay(env, task, 7, actions)
    there = _replay_in_fresh_process({"env": env, "task": task, "seed": 7, "actions": actions, "ballast": 54321})
    assert here.steps >= min(200, len(actions)) or here.ended
    assert there["step_digests"] == here.step_digests
    assert there["digest"] == here.digest
    assert there["rewards"] == here.rewards


def test_nethack_replays_at_least_200_steps() -> None:
    here = replay("nethack", None, 3, _actions("nethack", None, seed=5))
    assert here.steps >= 200 or here.ended


@pytest.mark.parametrize(("env", "task"), CASES)
def test_seeds_0_and_1_give_different_games(env: str, task: str | None) -> None:
    game = make_env(env, task)
    assert game.reset(0).text != game.reset(1).text
    game.close()


def test_unpatched_crafter_diverges_across_processes_which_the_wrapper_prevents() -> None:
    """Why the wrapper patches crafter: without it, the same seed/actions drift apart."""
    script = textwrap.dedent(
        """
        import hashlib, random, sys
        import crafter
        ballast = [object() for _ in range(int(sys.argv[1]))]
        env = crafter.Env(seed=0); env.reset()
        rng = random.Random(1); digest = hashlib.sha256()
        for _ in range(300):
            _, reward, done, info = env.step(rng.randrange(17))
            digest.update(info["semantic"].tobytes())
            if done: break
        print(digest.hexdigest())
        """
    )
    digests = {
        subprocess.run([sys.executable, "-c", script, str(ballast)], capture_output=True,
                       text=True, check=True).stdout
        for ballast in (0, 1000, 77777)
    }
    assert len(digests) > 1, "crafter became deterministic upstream: the patch may be obsolete"
    actions = [random.Random(1).choice(make_env("crafter").spec.actions) for _ in range(300)]
    patched = {
        _replay_in_fresh_process({"env": "crafter", "seed": 0, "actions": actions, "ballast": ballast})["digest"]
        for ballast in (0, 1000, 77777)
    }
    assert len(patched) == 1


def _nethack_digests_on_dates(fix_moon_phase: bool) -> set[str]:
    """Digest of one seeded NetHack game played under three faked dates."""
    script = textwrap.dedent(
        """
        import sys
        import gymnasium as gym, nle, hashlib
        env = gym.make("NetHackChallenge-v0", disable_env_checker=True,
                       fix_moon_phase=sys.argv[1] == "1").unwrapped
        env.nethack._pynethack.set_initial_seeds(9, 9, False, 9)
        obs, _ = env.reset()
        digest = hashlib.sha256(obs["tty_chars"].tobytes())
        for _ in range(30):
            obs, *_ = env.step(18)  # wait
            digest.update(obs["tty_chars"].tobytes() + obs["blstats"].tobytes())
        print(digest.hexdigest())
        """
    )
    digests = set()
    # a full moon, a new moon, and a Friday the 13th
    for date in ("2024-09-17 22:00:00", "2025-01-29 12:00:00", "2024-09-13 12:00:00"):
        completed = subprocess.run(
            ["faketime", date, sys.executable, "-c", script, "1" if fix_moon_phase else "0"],
            capture_output=True, text=True, timeout=120,
        )
        assert completed.returncode == 0, completed.stderr
        digests.add(completed.stdout)
    return digests


@pytest.mark.skipif(shutil.which("faketime") is None, reason="needs faketime (Debian package faketime)")
def test_nethack_game_does_not_depend_on_the_real_date() -> None:
    assert len(_nethack_digests_on_dates(fix_moon_phase=False)) > 1, "dates should matter unpinned"
    assert len(_nethack_digests_on_dates(fix_moon_phase=True)) == 1


@pytest.mark.skipif(shutil.which("faketime") is None, reason="needs faketime (Debian package faketime)")
def test_harness_nethack_replays_identically_on_any_date() -> None:
    request = json.dumps({"env": "nethack", "seed": 9, "actions": _actions("nethack", None, seed=4)[:80]})
    digests = set()
    for date in ("2024-09-17 22:00:00", "2025-01-29 12:00:00", "2024-09-13 12:00:00"):
        completed = subprocess.run(
            ["faketime", date, sys.executable, "-m", "harness.envs.replay"],
            input=request, capture_output=True, text=True, timeout=120,
        )
        assert completed.returncode == 0, completed.stderr
        digests.add(json.loads(completed.stdout)["digest"])
    assert len(digests) == 1
