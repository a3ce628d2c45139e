"""SFT data from traces: every example is verbatim text the inner-loop model produced.

Eligible examples are the recorded calls of a pool of runs in any routine but `act` (the world
action stays on the base model): input = the call's full recorded messages (and the tools it
offered), target = its recorded answer: the text and, for a tool-calling answer, its tool
calls, both exactly as stored. A selection (rules over recorded steps) decides which to keep,
a composition how many per routine and env; nothing is paraphrased or written by anyone else.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.memory.metrics import step_memory_counts
from harness.runs.layout import RunDir
from harness.runs.read import call_input, call_tools, read_run
from harness.train.fields import check_fields

MEMORY_ROUTINES = ("log", "recall")  # the default selection (the AUTOMEM memory routines)
WORLD_ROUTINE = "act"  # never trained: two-model inference keeps it on the base model


@dataclass
class SelectionRules:
    """Which recorded memory-routine calls become training examples."""

    routines: list[str] = field(default_factory=lambda: list(MEMORY_ROUTINES))
    envs: list[str] = field(default_factory=list)  # empty: every env
    min_episode_progression: float = 0.0  # only episodes that reached at least this
    progress_within_steps: int | None = None  # only steps followed by a progression gain within N steps
    require_valid_action: bool = False  # only steps whose world action was valid
    require_consult_before_write: bool = False  # only steps whose writes came after a search/read
    require_memory_op: bool = False  # only steps with at least one successful memory operation
    exclude_output_regex: str | None = None  # drop outputs matching this (e.g. "^NONE$")
    min_output_chars: int = 1
    max_output_chars: int | None = None
    dedupe: bool = True  # one example per distinct (input, output)

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> SelectionRules:
        check_fields(cls, data, "selection rules")
        rules = cls(**data)
        if WORLD_ROUTINE in rules.routines:
            raise ValueError("the world action (routine act) is never trained: two-model inference keeps it on the base model")
        if rules.exclude_output_regex:
            re.compile(rules.exclude_output_regex)
        return rules


@dataclass
class Composition:
    """How many examples at most per routine (and per env), drawn with a fixed seed."""

    per_routine: dict[str, int] = field(default_factory=lambda: {"log": 64, "recall": 64})
    per_env: dict[str, int] = field(default_factory=dict)  # empty: no cap per env
    seed: int = 0

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Composition:
        check_fields(cls, data, "composition keys")
        composition = cls(**data)
        if any(not isinstance(v, int) or v < 0 for v in [*composition.per_routine.values(), *composition.per_env.values()]):
            raise ValueError("composition counts must be whole numbers >= 0")
        return composition


@dataclass
class Candidate:
    """One recorded memory-routine call with the facts selection rules look at."""

    routine: str
    messages: list[dict[str, Any]]
    output: str
    env: str
    task: str
    seed: int
    step: int
    episode_progression: float
    progress_gain_within: int | None  # steps until the next progression gain (None: none)
    valid_action: bool
    consulted_before_write: bool
    memory_ops: int
    source: str  # episode folder
    tool_calls: list[dict[str, Any]] | None = None  # the answer's tool calls, verbatim
    tools: list[dict[str, Any]] | None = None  # the tools the call offered

    def example(self) -> dict[str, Any]:
        example = {"messages": self.messages, "completion": self.output, "routine": self.routine, "env": self.env,
                   "task": self.task, "seed": self.seed, "step": self.step, "source": self.source}  # fmt: skip
        if self.tool_calls:
            example["tool_calls"] = self.tool_calls
        if self.tools:
            example["tools"] = self.tools
        return example


def candidates_from_runs(run_dirs: list[RunDir]) -> list[Candidate]:
    found: list[Candidate] = []
    for run in (read_run(r.root) for r in run_dirs):
        for episode in run.episodes():
            steps, messages = run.steps(episode), run.messages(episode)
            folder = run.episode_folder(episode)
            gains = [i for i in range(1, len(steps)) if steps[i].progression > steps[i - 1].progression]
            for step in steps:
                counts = step_memory_counts(step.memory_ops)
                done_ops = sum(op.ok for op in step.memory_ops)
                next_gain = next((g - step.index for g in gains if g >= step.index), None)
                for call in step.llm_calls:
                    if call.routine == WORLD_ROUTINE or call.output is None:
                        continue
                    found.append(Candidate(
                        call.routine, call_input(call, messages), call.output, episode.env, episode.task,
                        episode.seed, step.index, episode.progression, next_gain, step.valid,
                        counts.consults_before_writing, done_ops, str(folder),
                        # a JSON-mode answer is its raw text, its tools already in the sent messages
                        *((call.tool_calls, call_tools(call, messages)) if call.tool_mode != "json" else (None, None)),
                    ))  # fmt: skip
    return found


def select(candidates: list[Candidate], rules: SelectionRules) -> list[Candidate]:
    exclude = re.compile(rules.exclude_output_regex) if rules.exclude_output_regex else None
    kept, seen = [], set()
    for c in candidates:
        if c.routine not in rules.routines or (rules.envs and c.env not in rules.envs):
            continue
        if c.episode_progression < rules.min_episode_progression:
            continue
        if rules.progress_within_steps is not None and (c.progress_gain_within is None or c.progress_gain_within > rules.progress_within_steps):
            continue
        if (rules.require_valid_action and not c.valid_action) or (rules.require_consult_before_write and not c.consulted_before_write):
            continue
        if rules.require_memory_op and c.memory_ops == 0:
            continue
        text = c.output.strip() or json.dumps(c.tool_calls or "")  # a tool-calling answer may hold no text
        if len(text) < rules.min_output_chars or (rules.max_output_chars and len(text) > rules.max_output_chars):
            continue
        if exclude and exclude.search(c.output):
            continue
        key = (json.dumps(c.messages), c.output, json.dumps(c.tool_calls))
        if rules.dedupe and key in seen:
            continue
        seen.add(key)
        kept.append(c)
    return kept


def compose(selected: list[Candidate], composition: Composition) -> list[Candidate]:
    rng = random.Random(composition.seed)
    pool = list(selected)
    rng.shuffle(pool)
    per_routine: Counter[str] = Counter()
    per_env: Counter[str] = Counter()
    chosen = []
    for c in pool:
        if per_routine[c.routine] >= composition.per_routine.get(c.routine, 0):
            continue
        if composition.per_env and per_env[c.env] >= composition.per_env.get(c.env, 0):
            continue
        per_routine[c.routine] += 1
        per_env[c.env] += 1
        chosen.append(c)
    return chosen


def build_sft_data(runs: list[RunDir], rules: SelectionRules, composition: Composition, out: Path) -> dict[str, Any]:
    """Write the data set (JSON lines) and return its statistics."""
    candidates = candidates_from_runs(runs)
    selected = select(candidates, rules)
    chosen = compose(selected, composition)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(c.example(), ensure_ascii=False) + "\n" for c in chosen))
    return {
        "eligible": len(candidates), "selected": len(selected), "examples": len(chosen),
        "by_routine": dict(Counter(c.routine for c in chosen)), "by_env": dict(Counter(c.env for c in chosen)),
        "rules": asdict(rules), "composition": asdict(composition), "path": str(out),
    }  # fmt: skip
