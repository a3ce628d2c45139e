"""Conformance with BALROG, measured against BALROG's own output (not by reading its code).

- Crafter: BALROG's wrapper wrote its text for 510 states of our game (tests/data/balrog);
  replaying the same seeds and actions must give the same long- and short-lived parts.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.envs.crafter import CrafterEnv

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
