"""Evaluation suites: YAML files naming, per env, the tasks, seeds and step cap."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.envs import ENV_NAMES, STANDARD_TEXT, TextVariant, tasks_of

SUITES_DIR = Path(__file__).resolve().parents[2] / "suites"


@dataclass(frozen=True)
class EnvPlan:
    env: str
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    max_steps: int


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    envs: tuple[EnvPlan, ...]
    source: str
    text: TextVariant = STANDARD_TEXT  # which observation and instructions the model reads

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "source": self.source,
                "envs": {p.env: {"tasks": list(p.tasks), "seeds": list(p.seeds), "max_steps": p.max_steps}
                         for p in self.envs},
                "text": self.text.to_json()}  # fmt: skip


def parse_seeds(text: str) -> tuple[int, ...]:
    """'0-4' -> (0, 1, 2, 3, 4); '1,3,7' and '2' work too."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if "-" in part:
            low, high = part.split("-", 1)
            seeds.extend(range(int(low), int(high) + 1))
        elif part:
            seeds.append(int(part))
    if not seeds:
        raise ValueError(f"no seeds in {text!r}; write e.g. 0-4 or 1,3,7")
    return tuple(seeds)


def load_suite(name_or_path: str) -> Suite:
    """A suite by name (suites/NAME.yaml) or by file path."""
    path = Path(name_or_path)
    if not path.is_file():
        path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SUITES_DIR.glob("*.yaml")))
        raise ValueError(f"unknown suite {name_or_path!r}: give a YAML file or one of: {known}")
    data = yaml.safe_load(path.read_text())
    plans = []
    for env, plan in (data.get("envs") or {}).items():
        if env not in ENV_NAMES:
            raise ValueError(f"{path}: unknown env {env!r}; envs: {', '.join(ENV_NAMES)}")
        tasks = tuple(plan.get("tasks") or tasks_of(env))
        for task in tasks:
            if task not in tasks_of(env):
                raise ValueError(f"{path}: unknown {env} task {task!r}; tasks: {', '.join(tasks_of(env))}")
        seeds = parse_seeds(",".join(map(str, plan["seeds"]))) if isinstance(plan.get("seeds"), list) else parse_seeds(plan.get("seeds", "0"))
        plans.append(EnvPlan(env, tasks, seeds, int(plan["max_steps"])))
    try:
        text = TextVariant(str(data.get("observation", "balrog")), str(data.get("instructions", "balrog")))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return Suite(str(data.get("name", path.stem)), str(data.get("description", "")), tuple(plans), str(path), text)


def narrow(suite: Suite, envs: tuple[str, ...] = (), seeds: tuple[int, ...] | None = None,
           max_steps: int | None = None, seed_offset: int = 0) -> Suite:  # fmt: skip
    """The suite restricted to some envs, with other seeds (or its own shifted by
    `seed_offset`: held-out seeds per env) or another step cap."""
    unknown = set(envs) - {plan.env for plan in suite.envs}
    if unknown:
        raise ValueError(f"suite {suite.name} has no env {', '.join(sorted(unknown))}")
    if seeds and seed_offset:
        raise ValueError("give seeds or a seed offset, not both")
    plans = tuple(
        EnvPlan(plan.env, plan.tasks, seeds or tuple(s + seed_offset for s in plan.seeds), max_steps or plan.max_steps)
        for plan in suite.envs if not envs or plan.env in envs
    )  # fmt: skip
    # A narrowed suite never goes by the full suite's name: its numbers are not the suite's.
    changes = []
    if len(plans) < len(suite.envs):
        changes.append("envs=" + ",".join(plan.env for plan in plans))
    if seeds and any(plan.seeds != tuple(seeds) for plan in suite.envs):
        changes.append("seeds=" + seed_text(seeds))
    if seed_offset:
        changes.append(f"seeds=+{seed_offset}")
    if max_steps and any(plan.max_steps != max_steps for plan in suite.envs):
        changes.append(f"max_steps={max_steps}")
    return Suite(_derived_name(suite.name, changes), suite.description, plans, suite.source, suite.text)


def _derived_name(name: str, changes: list[str]) -> str:
    """'standard' + ['seeds=0'] -> 'standard[seeds=0]'; adds to a name already derived."""
    if not changes:
        return name
    base, earlier = parse_derived_name(name)
    parts = {**earlier, **dict(change.split("=", 1) for change in changes)}
    ordered = sorted(parts.items(), key=lambda item: _NAME_PARTS.index(item[0]))
    return f"{base}[{';'.join(f'{key}={value}' for key, value in ordered)}]"


_NAME_PARTS = ("envs", "seeds", "max_steps", "observation", "instructions")  # order in a name


def with_text(suite: Suite, observation: str | None = None, instructions: str | None = None) -> Suite:
    """The suite whose model reads another observation or instructions variant. The name
    says so ('standard[observation=rich]'): its numbers are not the standard's."""
    text = TextVariant(observation or suite.text.observation, instructions or suite.text.instructions)
    changes = [f"{key}={value}" for key, value in text.to_json().items()
               if value != getattr(suite.text, key)]  # fmt: skip
    return Suite(_derived_name(suite.name, changes), suite.description, suite.envs, suite.source, text)


def seed_option(text: str | None) -> tuple[tuple[int, ...] | None, int]:
    """A --seeds value: None (the suite's), '0-4' / '1,3' (these seeds), or '+500' (each env's
    own seeds shifted by 500: a held-out set of the same size)."""
    if not text:
        return None, 0
    text = str(text).strip()
    if text.startswith("+"):
        offset = int(text[1:])
        if offset <= 0:
            raise ValueError(f"a seed offset must be positive: {text!r}")
        return None, offset
    return parse_seeds(text), 0


def with_seeds(suite: Suite, text: str | None) -> Suite:
    """The suite with the seeds a --seeds value names (see seed_option)."""
    seeds, offset = seed_option(text)
    return narrow(suite, seeds=seeds, seed_offset=offset) if (seeds or offset) else suite


def seed_sets(suite: Suite) -> dict[str, set[int]]:
    return {plan.env: set(plan.seeds) for plan in suite.envs}


def seed_text(seeds: tuple[int, ...] | list[int]) -> str:
    """'0-4' for a run of three or more consecutive seeds, else '1,3,7' (names and tables)."""
    ordered = sorted(seeds)
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}-{ordered[-1]}"
    return ",".join(map(str, seeds))


def parse_derived_name(name: str) -> tuple[str, dict[str, str]]:
    """'standard[seeds=0;max_steps=5]' -> ('standard', {'seeds': '0', 'max_steps': '5'})."""
    if not name.endswith("]") or "[" not in name:
        return name, {}
    base, _, changes = name[:-1].partition("[")
    parts = dict(part.split("=", 1) for part in changes.split(";") if "=" in part)
    return base, parts


def rederived(name: str, source: str = "") -> Suite:
    """The suite a run's recorded name stands for, built again from its file: the suite file
    the run recorded if it is still there, else suites/BASE.yaml, narrowed as the name says."""
    base, changes = parse_derived_name(name)
    unknown = set(changes) - set(_NAME_PARTS)
    if unknown:
        raise ValueError(f"suite name {name!r} has unknown parts: {', '.join(sorted(unknown))}")
    suite = load_suite(source) if source and Path(source).is_file() else load_suite(base)
    if suite.name != base:
        suite = load_suite(base)
    seeds, offset = seed_option(changes.get("seeds"))
    narrowed = narrow(suite, tuple(changes["envs"].split(",")) if "envs" in changes else (), seeds,
                      int(changes["max_steps"]) if "max_steps" in changes else None, offset)  # fmt: skip
    return with_text(narrowed, changes.get("observation"), changes.get("instructions"))
