"""Where a large scaffold state is kept for a resume: two slots beside the trace, not the trace.

A scaffold's `state()` is stored after each step where it changed, so a killed worker can
continue (agent.resume). A small state goes into the step's record. A large one (BALROG's
naive agent keeps its 16-step history: ~40 KB a step) would make the trace grow by that much
at every step (measured: a NetHack episode's folder passed 1 GiB at step 22,936), so it goes to a slot file instead, and the
step records its SHA-256. Two slots, written in turn: the new state goes to the slot that does
not hold the state the last recorded step names, before that step's line is written, so a
worker killed at any moment leaves the state its last recorded step needs.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

STATE_DIR = "scaffold-state"
SLOTS = ("a.json", "b.json")
INLINE_STATE_CHARS = 4096  # a state's JSON up to this size stays in the step record (as before 1.10)
STATE_FIELD = "scaffold_state"
SHA_FIELD = "scaffold_state_sha256"


def state_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class StateSlots:
    """The two slots of an episode folder."""

    def __init__(self, episode_dir: Path) -> None:
        self.folder = episode_dir / STATE_DIR
        self._committed: str | None = None  # the slot holding the state the last written step names

    def keep(self, step: int, record: dict[str, Any], text: str) -> None:
        """A step record's changed state (`record[STATE_FIELD]`, its JSON `text`): left in the
        record when small, else moved to a slot and named by its SHA-256."""
        if STATE_FIELD in record and len(text) > INLINE_STATE_CHARS:
            del record[STATE_FIELD]
            record[SHA_FIELD] = self.write(step, text)

    def write(self, step: int, text: str) -> str:
        """Keep the state whose JSON is `text` for step `step`; returns the SHA-256 the step records."""
        sha = state_sha(text)
        slot = SLOTS[1] if self._committed == SLOTS[0] else SLOTS[0]
        if self._committed is None:
            self.folder.mkdir(exist_ok=True)
        # Written over in place, not through a temporary file renamed (that cost 0.5 ms a step),
        # and not truncated first (freeing and refilling the pages cost 0.1 ms): the new text
        # goes over the old from the start, then the file is cut to its length. The slot written
        # is never the one the last recorded step names, so a worker killed mid-write tears only
        # a state no record names yet (a stale tail makes it unreadable), and `read` checks the
        # SHA-256 of what it finds. Not synced to disk: a killed worker's writes are the OS's
        # already, as its steps.jsonl lines are (a machine that loses its page cache loses both).
        data = f'{{"step": {int(step)}, "sha256": "{sha}", "state": {text}}}'.encode()
        descriptor = os.open(self.folder / slot, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            written = 0
            while written < len(data):  # a regular file takes it in one write; a short one goes on
                written += os.pwrite(descriptor, data[written:], written)
            os.ftruncate(descriptor, len(data))
        finally:
            os.close(descriptor)
        self._committed = slot
        return sha

    def read(self, sha: str) -> tuple[bool, Any]:
        """(found, the state whose SHA-256 is `sha`); the slot holding it is then the committed one."""
        for slot in SLOTS:
            path = self.folder / slot
            try:
                saved = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(saved, dict) and saved.get("sha256") == sha and \
                    state_sha(json.dumps(saved.get("state"), sort_keys=True)) == sha:  # fmt: skip
                self._committed = slot
                return True, saved["state"]
        return False, None


def state_identity(scaffold_state: Any, sha: str | None) -> str | None:
    """What a step record says the state became, in one form whether it was stored inline or in
    a slot (a run recorded before 1.10 and its re-execution now compare equal): its SHA-256,
    or None when the step stored none (unchanged)."""
    if sha:
        return sha
    return None if scaffold_state is None else state_sha(json.dumps(scaffold_state, sort_keys=True))
