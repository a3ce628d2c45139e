"""Conformance with BALROG, measured against BALROG's own output (not by reading its code).

- Crafter: BALROG's wrapper wrote its text for 510 states of our game (tests/data/balrog);
  replaying the same seeds and actions must give the same long- and short-lived parts.
- NetHack and MiniHack: BALROG's compiled language observation (PyPI balrog-nle 0.9.0, in its
  own virtualenv) describes the states of recorded episodes of every suite task; every section
  must be identical (harness.conformance).
- Progression: BALROG's rule for each game, stated in the test, against ours step by step.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import yaml
from tabulate import tabulate

from harness.conformance.nle_states import SECTIONS, measure, our_sections, table
from harness.envs import make_env
from harness.envs.crafter import CrafterEnv
from harness.envs.progression import NETHACK_MILESTONES as MILESTONES

DATA = Path(__file__).parent / "data" / "balrog"


def test_crafter_text_is_balrogs_on_every_golden_state() -> None:
    env = CrafterEnv()
    identical, total, first_difference = 0, 0, None
    for line in (DATA / "crafter_text_golden.jsonl").read_text().splitlines():
        golden = json.loads(line)
        observations = [env.reset(golden["seed"])]
        observations += [env.step(action).observation for action in golden["actions"]]
        assert len(observations) == len(golden["observations"])
        for index, (ours, theirs) in enumerate(zip(observations, golden["observations"])):
            total += 1
            same = (ours.long_lived, ours.short_lived) == (theirs["long_term"], theirs["short_term"])
            identical += same
            if not same and first_difference is None:
                first_difference = (golden["seed"], index, ours.long_lived, ours.short_lived, theirs)
            # The whole text is BALROG's current-observation layout: short part, newline, long part.
            assert ours.text == f"{theirs['short_term']}\n{theirs['long_term']}" or not same
    print(f"Crafter text: {identical}/{total} golden states identical to BALROG's")
    assert (identical, total) == (510, 510), first_difference


# -- NetHack and MiniHack: our text against BALROG's compiled language observation ------------
def _balrog_python() -> str:
    python = os.environ.get("HARNESS_BALROG_PYTHON", ".cache/balrog-venv/bin/python")
    if not Path(python).exists():
        reason = f"no balrog-nle virtualenv at {python} (make install-balrog)"
        if os.environ.get("HARNESS_REQUIRE_BALROG") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return python


def _nle_tasks() -> list[tuple[str, str]]:
    suite = yaml.safe_load((Path(__file__).parent.parent / "suites" / "standard.yaml").read_text())
    return [(env, task) for env in ("nethack", "minihack") for task in suite["envs"][env]["tasks"]]


def test_nle_text_is_balrogs_on_every_section_of_every_suite_task() -> None:
    python = _balrog_python()
    results = [measure(python, env, task, seeds=[0, 1, 2, 3, 4], steps=50) for env, task in _nle_tasks()]
    print("\n" + tabulate(table(results), headers=["task", *SECTIONS]))
    for result in results:
        assert result.sections["message"].states >= 5 * 10, result.task  # five seeds, each played
        for name, count in result.sections.items():
            assert count.identical_states == count.states, (result.task, name, count.first_difference)


def test_the_standard_nle_observation_is_balrogs_hybrid_layout() -> None:
    game = make_env("minihack", "MazeWalk-9x9")
    observation = game.reset(0)
    raw = observation.raw
    sections = our_sections({name: raw[name][None] for name in raw if name != "message"}, 0)
    game.close()
    assert observation.short_lived == f"inventory:\n{sections['inventory']}\n"
    cursor = raw["tty_cursor"]
    assert observation.long_lived == (
        f"message:\n{sections['message']}\n\nlanguage observation:\n{sections['language']}\n\n"
        f"cursor:\n{sections['cursor']}\n(x={int(cursor[1])}, y={int(cursor[0])})\n\nmap:\n{sections['map']}\n"
    )
    assert observation.text == observation.short_lived + "\n" + observation.long_lived


# -- progression: BALROG's rule, stated here from its definition, on our trajectories ----------
def test_minihack_progression_is_balrogs_reward_rule_and_solved_is_its_own_field() -> None:
    for task in ("MazeWalk-9x9", "Corridor-R3", "Quest-Easy"):
        game = make_env("minihack", task)
        for seed in range(3):
            game.reset(seed)
            choose = random.Random(seed)
            balrog = 0.0
            for _ in range(100):
                result = game.step(choose.choice(game.spec.actions))
                balrog = 1.0 if result.reward >= 1.0 else 0.0  # BALROG: set on every step
                assert result.progression == balrog or (result.progression == 1.0 and result.done)
                assert result.info["solved"] == (result.info["end_status"] == 2)
                if result.done or result.truncated:
                    break
            assert result.progression == balrog
        game.close()


def test_crafter_and_nethack_progression_follow_balrogs_rules_step_by_step() -> None:
    game = make_env("crafter")
    game.reset(1)
    choose = random.Random(1)
    for _ in range(300):
        result = game.step(choose.choice(game.spec.actions))
        assert result.progression == len(result.info["achievements"]) / 22
    nethack = make_env("nethack")
    nethack.reset(2)
    choose, reached = random.Random(2), 0.0
    for _ in range(300):
        result = nethack.step(choose.choice(nethack.spec.actions))
        blstats = nethack._observation["blstats"]  # type: ignore[attr-defined]
        reached = max(reached, MILESTONES.get(f"Dlvl:{int(blstats[12])}", 0.0), MILESTONES.get(f"Xp:{int(blstats[18])}", 0.0))
        assert result.progression == reached
        if result.done or result.truncated:
            break
    nethack.close()
