"""NetHack and MiniHack text against BALROG's compiled language observation, state by state.

Recorded episodes (random actions, seeded) of every NLE task of a suite give the states; our
code and BALROG's (`balrog_side.py` in the balrog-nle virtualenv) describe each one; the share
of identical states and lines is counted per section: message, language observation ("map
description"), cursor, map rows, inventory.
"""

from __future__ import annotations

import json
import random
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nle.nethack as nh
import numpy as np

from harness.envs import make_env
from harness.envs.nle_language import cursor_text, language_view, terminal_message
from harness.envs.nle_text import inventory_text, terminal_rows

SECTIONS = ("message", "language", "cursor", "map", "inventory")
_ARRAYS = ("glyphs", "blstats", "tty_chars", "tty_cursor", "inv_strs", "inv_letters")
BALROG_SIDE = Path(__file__).with_name("balrog_side.py")


@dataclass
class SectionCount:
    states: int = 0
    identical_states: int = 0
    lines: int = 0
    identical_lines: int = 0
    first_difference: tuple[str, str] | None = None  # (ours, BALROG's)

    def add(self, ours: str, theirs: str) -> None:
        self.states += 1
        self.identical_states += ours == theirs
        our_lines, their_lines = ours.split("\n"), theirs.split("\n")
        self.lines += max(len(our_lines), len(their_lines))
        self.identical_lines += sum(a == b for a, b in zip(our_lines, their_lines))
        if ours != theirs and self.first_difference is None:
            self.first_difference = (ours, theirs)


@dataclass
class TaskConformance:
    env: str
    task: str
    sections: dict[str, SectionCount] = field(default_factory=lambda: {name: SectionCount() for name in SECTIONS})


def record_states(env: str, task: str, seeds: list[int], steps: int) -> dict[str, np.ndarray]:
    """The game's arrays after the reset and after each random action, for every seed."""
    kept: dict[str, list[np.ndarray]] = {name: [] for name in _ARRAYS}
    game = make_env(env, task)
    try:
        for seed in seeds:
            observation = game.reset(seed)
            choose = random.Random(f"{task}/{seed}")
            for index in range(steps + 1):
                for name in _ARRAYS:  # the arrays the text was written from (Observation.raw)
                    kept[name].append(np.array(observation.raw[name], copy=True))
                if index == steps:
                    break
                result = game.step(choose.choice(game.spec.actions))
                observation = result.observation
                if result.done or result.truncated:
                    break
    finally:
        game.close()
    return {name: np.stack(values) for name, values in kept.items()}


def our_sections(states: dict[str, np.ndarray], index: int) -> dict[str, str]:
    glyphs, blstats, tty_chars = states["glyphs"][index], states["blstats"][index], states["tty_chars"][index]
    x, y = int(blstats[nh.NLE_BL_X]), int(blstats[nh.NLE_BL_Y])
    return {
        "message": terminal_message(tty_chars),
        "language": language_view(glyphs, x, y),
        "cursor": cursor_text(glyphs, x, y, states["tty_cursor"][index]),
        "map": terminal_rows(tty_chars),
        "inventory": inventory_text(states["inv_letters"][index], states["inv_strs"][index]),
    }


def balrog_sections(python: str, states: dict[str, np.ndarray]) -> list[dict[str, str]]:
    """BALROG's own text for each state (its compiled calls), plus its map rows: BALROG's
    hybrid prompt writes every terminal row but the first, each character as it is."""
    with tempfile.TemporaryDirectory(prefix="harness-conformance-") as folder:
        states_file, out = Path(folder) / "states.npz", Path(folder) / "texts.json"
        np.savez(states_file, **states)  # type: ignore[arg-type]  # numpy types the keywords as its own flags
        subprocess.run([python, "-W", "ignore", str(BALROG_SIDE), "texts", str(states_file), str(out)],
                       check=True, capture_output=True, timeout=600)  # fmt: skip
        texts: list[dict[str, str]] = json.loads(out.read_text())
    for index, text in enumerate(texts):
        text["map"] = "".join("".join(chr(c) for c in row) + "\n" for row in states["tty_chars"][index][1:])
    return texts


def measure(python: str, env: str, task: str, seeds: list[int], steps: int) -> TaskConformance:
    states = record_states(env, task, seeds, steps)
    found = TaskConformance(env, task)
    for index, theirs in enumerate(balrog_sections(python, states)):
        ours = our_sections(states, index)
        for name in SECTIONS:
            found.sections[name].add(ours[name], theirs[name])
    return found


def table(results: list[TaskConformance]) -> list[list[Any]]:
    """Rows: task, then per section 'identical states/states (lines %)'."""
    rows = []
    for result in results:
        row: list[Any] = [result.task]
        for name in SECTIONS:
            count = result.sections[name]
            share = 100 * count.identical_lines / count.lines if count.lines else 100.0
            row.append(f"{count.identical_states}/{count.states} ({share:.1f}% lines)")
        rows.append(row)
    return rows
