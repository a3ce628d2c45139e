"""Replay a recorded action list on its seed and fingerprint what the game answered.

Used to prove exact seeding (the same seed and actions give byte-identical observations and
rewards in any process) and, later, to verify recorded runs. As a module it reads one JSON
request on stdin and prints the replay as JSON, so a fresh process can be asked:

    echo '{"env": "nethack", "seed": 0, "actions": ["north", "search"]}' | python -m harness.envs.replay
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass, field

from harness.envs import GameEnv, make_env


@dataclass
class Replay:
    env: str
    task: str
    seed: int
    steps: int = 0
    digest: str = ""  # sha256 over every observation text and reward, in order
    step_digests: list[str] = field(default_factory=list)  # running digest after each step
    rewards: list[float] = field(default_factory=list)
    progression: float = 0.0
    ended: bool = False


def replay(env: str, task: str | None, seed: int, actions: list[str], game: GameEnv | None = None) -> Replay:
    """Play `actions` from `reset(seed)`; stops early if the episode ends."""
    game = game or make_env(env, task)
    hasher = hashlib.sha256()
    observation = game.reset(seed)
    hasher.update(observation.text.encode())
    record = Replay(env=env, task=game.spec.name, seed=seed)
    for action in actions:
        result = game.step(action)
        hasher.update(b"\0" + result.observation.text.encode() + b"\0" + repr(result.reward).encode())
        record.steps += 1
        record.rewards.append(result.reward)
        record.step_digests.append(hasher.hexdigest()[:16])
        record.progression = result.progression
        if result.done or result.truncated:
            record.ended = True
            break
    record.digest = hasher.hexdigest()
    game.close()
    return record


def main() -> None:
    request = json.load(sys.stdin)
    # Shift the heap so that any id()-ordered iteration would differ from the caller's.
    ballast = [object() for _ in range(int(request.get("ballast", 0)))]
    result = replay(request["env"], request.get("task"), int(request["seed"]), list(request["actions"]))
    del ballast
    json.dump(asdict(result), sys.stdout)


if __name__ == "__main__":
    main()
