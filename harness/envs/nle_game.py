"""The shared driver for NLE-based games: exact seeding, named actions, --More-- handling.

Seeding that really reproduces a game (measured on nle 1.3.0): `reset(seed=...)` only seeds
gymnasium's RNG; NetHack's own core and display RNGs must be set on the underlying
`_pynethack` object before every reset, with `reseed=False` (NetHack otherwise re-seeds from
true randomness as an anti-automation measure). `fix_moon_phase=True` derives moon phase and
Friday-13th from the seed instead of the real date, so a seed gives one game on every day.
"""

from __future__ import annotations

import abc
import enum
from typing import Any

import gymnasium as gym
import nle.nethack as nh
import numpy as np

from harness.envs.base import (
    STANDARD_TEXT,
    Observation,
    StepResult,
    TaskSpec,
    TextVariant,
    check_action,
)
from harness.envs.nle_actions import NamedAction
from harness.envs.nle_language import terminal_message
from harness.envs.nle_text import VIEWS

OBSERVATION_KEYS = (
    "glyphs", "chars", "blstats", "message", "tty_chars", "tty_cursor", "inv_letters", "inv_strs",
)  # fmt: skip
_MORE_KEY = ord("\r")
_MORE_MARKER = "--More--"
_MAX_AUTO_MORE = 32  # a game message chain longer than this is left for the agent to page


def copy_observation(observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """NLE reuses its buffers on every step: keep copies."""
    return {key: np.array(value, copy=True) for key, value in observation.items()}


class NLEGameEnv(abc.ABC):
    """A GameEnv over one NLE/MiniHack gymnasium id. Subclasses define progression."""

    spec: TaskSpec

    def __init__(self, gym_id: str, game_step_limit: int | None = None,
                 text: TextVariant = STANDARD_TEXT, **make_kwargs: Any) -> None:  # fmt: skip
        self._gym_id = gym_id
        self.text = text
        self._view = VIEWS[text.observation]
        self._make_kwargs = make_kwargs
        self._env = self._make()
        if game_step_limit is not None:
            # BALROG's max_episode_steps becomes gymnasium's TimeLimit around the game, which
            # counts every game step (its --More-- pages too); NLE's own counter is the same
            # count, and ends the game as ABORTED on the same step.
            self._env._max_episode_steps = game_step_limit
        self._actions: tuple[enum.IntEnum, ...] = tuple(self._env.actions)
        self.vocabulary = self._vocabulary()
        position = {int(action): index for index, action in reversed(list(enumerate(self._actions)))}
        missing = [a.name for a in self.vocabulary if a.key not in position]
        if missing:
            raise ValueError(f"{gym_id} cannot send the keys of {', '.join(missing)}")
        self._index_of = {a.name: position[a.key] for a in self.vocabulary}
        self._more_index = next(
            (i for i, action in enumerate(self._actions) if int(action) == _MORE_KEY), None
        )
        self._observation: dict[str, np.ndarray] = {}

    def _make(self) -> Any:
        return gym.make(
            self._gym_id,
            disable_env_checker=True,
            observation_keys=OBSERVATION_KEYS,
            fix_moon_phase=True,
            **self._make_kwargs,
        ).unwrapped

    @property
    def action_names(self) -> tuple[str, ...]:
        return tuple(self._index_of)

    def disk_state(self) -> tuple[str, ...]:
        """The folders whose files are part of the game's state: NetHack keeps the levels the
        hero has left in files (a snapshot of the game copies them, envs.snapshot)."""
        return (str(self._env.nethack._vardir),)

    # -- hooks -------------------------------------------------------------------------------
    @abc.abstractmethod
    def _vocabulary(self) -> tuple[NamedAction, ...]:
        """The named actions the model may answer with (nle_actions)."""

    def _before_reset(self, seed: int) -> None:
        """Called after seeding and before the game's reset (e.g. to pick a level)."""

    def _start_episode(self, observation: dict[str, np.ndarray]) -> None:
        """Called with the first observation of an episode."""

    @abc.abstractmethod
    def _update_progression(
        self, observation: dict[str, np.ndarray], done: bool, info: dict[str, Any], reward: float
    ) -> float:
        """Record this step's game state and reward (its --More-- pages' included) and return
        progression so far (monotone)."""

    def _task_info(self) -> dict[str, Any]:
        """Facts of the task to report with each step (e.g. MiniHack's `solved`)."""
        return {}

    def _truncated(self, observation: dict[str, np.ndarray]) -> bool:
        """An extra stopping rule of the task (beyond the game's own)."""
        return False

    # -- GameEnv -------------------------------------------------------------------------------
    def reset(self, seed: int) -> Observation:
        seed = int(seed)
        # A seed applies to the next reset only; NetHackChallenge blocks the public seed(),
        # its underlying nethack object still takes the seeds.
        self._env.nethack._pynethack.set_initial_seeds(seed, seed, False, seed)
        self._before_reset(seed)
        observation, _ = self._env.reset()
        self._observation = copy_observation(observation)
        self._start_episode(self._observation)
        message = terminal_message(self._observation["tty_chars"])
        return self._observed(message)

    def step(self, action: str) -> StepResult:
        check_action(self.spec, action)
        observation, reward, done, truncated, info = self._env.step(self._index_of[action])
        message = terminal_message(observation["tty_chars"])
        total_reward = float(reward)
        pages = 0
        while (
            not done
            and self._more_index is not None
            and pages < _MAX_AUTO_MORE
            and _MORE_MARKER in message
        ):
            # Page through "--More--" so the agent reads the whole message in one step, each
            # page's text after the last (BALROG's skip_more does the same).
            observation, reward, done, truncated, info = self._env.step(self._more_index)
            message = message.replace(_MORE_MARKER, "\n") + terminal_message(observation["tty_chars"])
            total_reward += float(reward)
            pages += 1
        # A task's own step limit comes back as a terminated game with end_status ABORTED (-1).
        aborted = int(info.get("end_status", 0)) == -1
        if done:
            # NLE zeroes the arrays at game end; keep the last living view for the text.
            observation = {**self._observation, "message": observation["message"]}
        self._observation = copy_observation(observation)
        progression = self._update_progression(self._observation, bool(done), info, total_reward)
        truncated = bool(truncated) or aborted or self._truncated(self._observation)
        done = bool(done) and not aborted
        return StepResult(
            observation=self._observed(message),
            reward=total_reward,
            done=bool(done),
            truncated=truncated and not done,
            progression=progression,
            info={
                "end_status": int(info.get("end_status", 0)),
                "more_pages": pages,
                "game_time": int(self._observation["blstats"][nh.NLE_BL_TIME]),
                **self._task_info(),
            },
        )

    def _observed(self, message: str) -> Observation:
        observation = self._view(self._observation, message)
        observation.raw = self._observation
        return observation

    def close(self) -> None:
        self._env.close()
