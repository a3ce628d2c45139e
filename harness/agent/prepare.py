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

from harness.agent.resume import Continuation, continue_or_restart, keep_steps, read_recorded
from harness.envs import GameEnv, TextVariant, make_env
from harness.envs.base import Observation
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
    game, observation, aborted = start_game(spec)
    try:
        continuation = continue_or_restart(directory, game, spec.seed, observation, recorded)
        if game is not None and hasattr(game, "lock"):
            game.lock()
    except Exception as failure:  # the game failed while replaying: keep everything, --resume tries again
        continuation = Continuation(observation, recorded, earlier_resumes(directory))
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


def start_game(spec: EpisodeSpec) -> StartedGame:
    """The episode's game, made and reset on its seed in its own process: (game, first
    observation, None), or the failure. Without an env server address the game is a forked
    GameProcess keeping its log in the episode folder."""
    game: GameEnv | None = None
    try:
        text = TextVariant(spec.observation, spec.instructions)
        if spec.env_address:
            from harness.envs.client import EnvClient
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
