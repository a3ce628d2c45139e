"""Starting an episode's game: in its own process, restored to the last recorded step, locked.

The worker does this before it imports the scaffold (agent.worker), so nothing the scaffold's
import patches reaches the game or its log, and every step the trace keeps from an earlier
attempt is in this attempt's game log (envs.gamelog) by the time scaffold code runs. Without an
env server address (the docker runtime's env container) the game is a forked GameProcess.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from harness.agent.resume import (
    Continuation,
    Recorded,
    continue_or_restart,
    continued_from_snapshot,
    keep_steps,
    read_recorded,
)
from harness.envs import GameEnv, TextVariant, make_env, snapshot
from harness.envs.base import Observation
from harness.envs.client import EnvClient
from harness.envs.game_process import GameProcess
from harness.envs.gamelog import GAME_LOG_FILE
from harness.runs.jobs import EpisodeSpec
from harness.runs.layout import MEMORY_DIR
from harness.runs.salvage import earlier_resumes


class EpisodeAborted(Exception):
    """What ends an episode early, with its failure kind (runs.jobs)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class PreparedEpisode:
    """The game of an episode, started, restored to the last recorded step and locked."""

    game: GameEnv | None  # None: it failed to start
    continuation: Continuation
    aborted: EpisodeAborted | None  # the game's failure, if any
    env_s: float  # the time this took

    def close(self) -> None:
        if self.game is not None:
            try:
                self.game.close()
            except Exception:
                pass  # a game that fails to close has nothing left to lose


def prepare_episode(spec: EpisodeSpec) -> PreparedEpisode:
    """Start the game, continue from an earlier attempt's records (agent.resume) and lock the
    game against resets. The worker does this before it imports the scaffold: nothing the
    import patches reaches the game, and every step the trace keeps is in this attempt's game log."""
    started = time.perf_counter()
    directory = Path(spec.episode_dir)
    directory.mkdir(parents=True, exist_ok=True)
    recorded = read_recorded(directory)  # an earlier attempt (a killed worker): continued, see agent.resume
    restoring = time.perf_counter()  # a resume's replay_s counts from here, as continue_or_restart's does
    restored = game_from_snapshot(spec, recorded)
    game: GameEnv | None = None
    try:
        if isinstance(restored, Restored):
            assert recorded is not None
            game, aborted = restored.game, None
            continuation = continued_from_snapshot(directory, recorded, restored.observation, restored.from_step,
                                                   restoring)  # fmt: skip
        else:
            game, observation, aborted = start_game(spec)
            continuation = continue_or_restart(directory, game, spec.seed, observation, recorded, not_restored=restored)
        if game is not None and hasattr(game, "lock"):
            game.lock()
    except Exception as failure:  # the game failed while replaying: keep everything, --resume tries again
        continuation = Continuation(Observation(text=""), recorded, earlier_resumes(directory))
        if recorded is not None:
            keep_steps(directory, recorded)
        aborted = EpisodeAborted("env", f"the game failed while replaying the recorded actions: "
                                         f"{type(failure).__name__}: {failure}")  # fmt: skip
    if continuation.recorded is None:
        memory = directory / MEMORY_DIR
        if memory.is_symlink() or (memory.exists() and not memory.is_dir()):
            memory.unlink()  # a link an earlier attempt left is removed, never followed
        shutil.rmtree(memory, ignore_errors=True)  # a rerun starts from nothing
    return PreparedEpisode(game, continuation, aborted, time.perf_counter() - started)


StartedGame = tuple["GameEnv | None", Observation, "EpisodeAborted | None"]


@dataclass
class Restored:
    """The episode's game from its snapshot (envs.snapshot), at the last kept step."""

    game: GameEnv
    observation: Observation
    from_step: int  # the step the snapshot held: the kept steps after it were played again


def game_from_snapshot(spec: EpisodeSpec, recorded: Recorded | None) -> Restored | str | None:
    """The game restored from the snapshot an earlier attempt's game process left (a worker the
    run launches again), or why the snapshot there was not used (None: none to use; the game
    is then replayed from its reset). The docker runtime's env container keeps none."""
    if spec.env_address or recorded is None or not recorded.count or not recorded.has_state or recorded.state_lost:
        return None
    entry = snapshot.read_registry(Path(spec.episode_dir) / snapshot.SNAPSHOT_FILE)
    if entry is None:
        return None
    step = int(entry["step"])
    if step > recorded.count:
        return f"its snapshot holds step {step}, after the {recorded.count} kept steps"
    game: EnvClient | None = None
    try:
        connection = snapshot.connect(str(entry["address"]), spec.env_timeout_s)
        game = EnvClient(f"the snapshot at step {step}", spec.task, timeout_s=spec.env_timeout_s,
                         text=TextVariant(spec.observation, spec.instructions), connection=connection)  # fmt: skip
        observation, from_step = game.resume(recorded.actions, recorded.digests)
    except Exception as failure:  # gone, or it does not agree with the trace or the log: replayed from the reset
        if game is not None:
            game.close()
        return f"its snapshot at step {step} was not used ({type(failure).__name__}: {failure})"
    return Restored(game, observation, from_step)


def start_game(spec: EpisodeSpec) -> StartedGame:
    """The episode's game, made and reset on its seed in its own process: (game, first
    observation, None), or the failure. Without an env server address the game is a forked
    GameProcess keeping its log in the episode folder."""
    game: GameEnv | None = None
    try:
        text = TextVariant(spec.observation, spec.instructions)
        if spec.env_address:
            game = EnvClient(spec.env_address, spec.task, timeout_s=spec.env_timeout_s, text=text)
        else:
            process = GameProcess(spec.env, spec.task, spec.seed, text, str(Path(spec.episode_dir) / GAME_LOG_FILE),
                                  factory=make_env)  # fmt: skip
            game = process.client(spec.env_timeout_s)
        return game, game.reset(spec.seed), None
    except Exception as failure:
        if game is not None:  # made but not reset: its process must not outlive the episode
            try:
                game.close()
            except Exception:
                pass
        return None, Observation(text=""), EpisodeAborted("env", f"the game failed to start: {type(failure).__name__}: {failure}")
