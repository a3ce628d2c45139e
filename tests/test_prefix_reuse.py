"""Prefix-cache reuse (issue 13 part 2): the share of each prompt that repeats the start of an
earlier prompt of the episode, recorded per episode, verified, and reported per run."""

import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from harness.models.scripted import ScriptedModelServer
from harness.report.verify import verify_run
from harness.runs.prefix import PrefixCache
from harness.runs.read import read_run
from harness.tracks.eval import EvalOptions, run_eval

from conftest import write_submission

MESSAGES = {"s": {"role": "system", "content": "rules " * 20}, "o1": {"role": "user", "content": "Step 1. a tree north"},
            "o2": {"role": "user", "content": "Step 2. a tree south"}, "q": {"role": "user", "content": "LOG:"},
            "t0": {"tools": [{"type": "function", "function": {"name": "append"}}]}}  # fmt: skip


def _length(unit: str) -> int:
    return len(json.dumps(MESSAGES[unit], sort_keys=True, ensure_ascii=False))


def test_a_prompt_reuses_the_longest_start_it_shares_with_an_earlier_one() -> None:
    cache = PrefixCache(MESSAGES.__getitem__)
    assert cache.add(["t0", "s", "o1"]) == 0.0  # the episode's first prompt: nothing cached yet
    assert cache.add(["t0", "s", "o1", "q"]) == (_length("t0") + _length("s") + _length("o1")) / sum(map(_length, ["t0", "s", "o1", "q"]))
    # the next step: tools and rules repeat, and the observation's common start ('{"content": "Step ')
    shared = len('{"content": "Step ')
    total = sum(map(_length, ["t0", "s", "o2"]))
    assert cache.add(["t0", "s", "o2"]) == (_length("t0") + _length("s") + shared) / total
    assert cache.add(["t0", "s", "o2"]) == 1.0
    # without the tools first the prompt starts otherwise: only the record's framing ('{"') is shared
    assert cache.add(["s", "o1"]) == 2 / sum(map(_length, ["s", "o1"]))


@given(st.lists(st.lists(st.sampled_from(sorted(MESSAGES)), min_size=1, max_size=6), min_size=1, max_size=12))
def test_the_share_is_a_fraction_and_a_repeated_prompt_is_all_reused(prompts: list[list[str]]) -> None:
    cache = PrefixCache(MESSAGES.__getitem__)
    for units in prompts:
        assert 0.0 <= cache.add(units) <= 1.0
    assert cache.add(prompts[-1]) == 1.0


APPEND_ONLY = """
from harness.agent import Scaffold, Step

class Agent(Scaffold):
    def reset(self, task):
        self.system = {"role": "system", "content": task.instructions}

    def step(self, step: Step) -> str:
        talk = [self.system, {"role": "user", "content": step.observation}, {"role": "user", "content": "LOG: note it."}]
        talk.append({"role": "assistant", "content": str(self.chat(talk, routine="log", max_tokens=8))})
        talk.append({"role": "user", "content": "ACT:"})
        return self.chat(talk, routine="act", choices=list(step.actions))
"""


def _respond(request: dict[str, Any]) -> str:
    return (request.get("structured_outputs") or {}).get("choice", ["noted"])[0]


def test_runs_record_verify_and_report_prefix_reuse(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: tiny\nenvs:\n  crafter: {seeds: [0], max_steps: 4}\n")
    with ScriptedModelServer(_respond, owned_by="vllm") as server:
        run, results = run_eval(EvalOptions(submission=str(write_submission(tmp_path / "sub", APPEND_ONLY)),
                                            suite=str(suite), model=server.url, runs_dir=str(tmp_path / "runs"),
                                            run_id="prefix", show_progress=False))  # fmt: skip
    episode = read_run(run.root).episodes()[0]
    assert 0 < episode.tokens.prompt_reusable < episode.tokens.prompt  # type: ignore[operator]
    share = results.envs["crafter"].prefix_reuse
    assert share == episode.tokens.prompt_reusable / episode.tokens.prompt  # type: ignore[operator]
    assert 0.5 < share < 1.0  # each ACT call repeats its LOG call's prompt; a step's observation is new
    assert verify_run(run).verified
    folder = run.episode_dir("crafter", "crafter", 0)
    record = json.loads((folder / "episode.json").read_text())
    record["tokens"]["prompt_reusable"] += 1  # an edited figure is caught
    (folder / "episode.json").write_text(json.dumps(record))
    report = verify_run(run)
    assert not report.verified and any("prompt_reusable" in m.problem for m in report.mismatches)
