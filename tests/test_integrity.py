"""The score is out of the scaffold's reach: the game keeps its own log in its own process, and
the host scores the episode from that log (runs.seal). Attacks from scaffold code, in the
local runtime (the docker runtime's are in test_docker_runtime.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.envs.gamelog import GAME_LOG_FILE
from harness.models.scripted import ScriptedModelServer
from harness.report.verify import verify_run
from harness.runs import read_run
from harness.runs.layout import read_jsonl
from harness.tracks.eval import EvalOptions, run_eval

from conftest import write_submission

SUITE = """
name: two
description: two short episodes
envs:
  crafter: {tasks: [crafter], seeds: [0], max_steps: 3}
  minihack: {tasks: [MazeWalk-9x9], seeds: [0], max_steps: 3}
"""

# At import, every way the worker could see a step result is made to report a won game (the
# agent container of the docker runtime has no game installed: only the client is patched there).
PATCHES_THE_GAME = """
import importlib
import harness.envs.client as client_module
from harness.agent import Scaffold, Step


def winning(original):
    def step(self, action):
        result = original(self, action)
        result.progression = 1.0
        return result
    return step


client_module.EnvClient.step = winning(client_module.EnvClient.step)
for module, name in (("harness.envs.crafter", "CrafterEnv"), ("harness.envs.minihack", "MiniHackEnv")):
    try:
        game_class = getattr(importlib.import_module(module), name)
    except ImportError:
        continue
    game_class.step = winning(game_class.step)


class Agent(Scaffold):
    def step(self, step: Step) -> str:
        return step.actions[0]
"""

HONEST = """
from harness.agent import Scaffold, Step


class Agent(Scaffold):
    def step(self, step: Step) -> str:
        return step.actions[step.index % len(step.actions)]
"""

# Finds the worker's own session on its game and uses it: to restart the game, or to play moves
# the trace will not show (a look-ahead).
USES_THE_SESSION = """
import gc
from harness.agent import Scaffold, Step
from harness.envs.client import EnvClient


class Agent(Scaffold):
    def step(self, step: Step) -> str:
        session = next(o for o in gc.get_objects() if isinstance(o, EnvClient))
        if "{attack}" == "reset":
            session.reset(0)
        else:
            session.step(step.actions[1])
        return step.actions[0]
"""


def _run(tmp_path: Path, code: str, server: ScriptedModelServer, run_id: str = "run") -> Path:
    (tmp_path / "two.yaml").write_text(SUITE)
    submission = write_submission(tmp_path / f"sub-{run_id}", code)
    run, _ = run_eval(EvalOptions(submission=str(submission), suite=str(tmp_path / "two.yaml"), model=server.url,
                                  runs_dir=str(tmp_path / "runs"), run_id=run_id, show_progress=False))  # fmt: skip
    return run.root


def test_a_scaffold_that_patches_the_game_at_import_scores_what_it_really_played(
        tmp_path: Path, instant_model: ScriptedModelServer) -> None:  # fmt: skip
    root = _run(tmp_path, PATCHES_THE_GAME, instant_model)
    run = read_run(root)
    assert run.results is not None and run.results.overall.progression_mean == 0.0
    for episode in run.episodes():
        assert episode.progression == 0.0 and episode.status == "errored" and episode.error_kind == "scaffold"
        assert episode.game is not None and episode.game.trace_progression == 1.0 and not episode.game.agrees
        assert "disagrees with the game's own log at step 0" in str(episode.error)
        assert "progression 1.0" in str(episode.error)
    # the recorded disagreement is real: verify replays the game's log and agrees with the seal
    report = verify_run(root)
    assert report.verified, report.mismatches


def test_an_honest_episode_is_scored_from_the_game_log_which_records_every_step(
        tmp_path: Path, instant_model: ScriptedModelServer) -> None:  # fmt: skip
    root = _run(tmp_path, HONEST, instant_model)
    folder = root / "episodes" / "crafter" / "crafter" / "0"
    events = read_jsonl(folder / GAME_LOG_FILE)
    steps = read_jsonl(folder / "steps.jsonl")
    assert [e["event"] for e in events] == ["reset", "step", "step", "step"]
    assert [e["action"] for e in events[1:]] == [s["action"] for s in steps]
    episode = json.loads((folder / "episode.json").read_text())
    assert episode["game"]["agrees"] and episode["game"]["steps"] == 3 and episode["status"] == "truncated"
    assert verify_run(root).verified


@pytest.mark.parametrize("attack", ["reset", "step"])
def test_a_scaffold_cannot_restart_its_game_nor_play_moves_the_trace_does_not_show(
        tmp_path: Path, instant_model: ScriptedModelServer, attack: str) -> None:  # fmt: skip
    root = _run(tmp_path, USES_THE_SESSION.replace("{attack}", attack), instant_model)
    for episode in read_run(root).episodes():
        assert episode.status == "errored" and episode.error_kind == "scaffold"
        if attack == "reset":
            assert "cannot be reset once the scaffold runs" in str(episode.error)
        else:
            assert "disagrees with the game's own log" in str(episode.error)
    assert verify_run(root).verified


FILLS_ITS_FOLDER = """
import time
from harness.agent import Scaffold, Step


class Agent(Scaffold):
    def step(self, step: Step) -> str:
        if step.index == 1:  # past the harness's memory, straight into the episode folder (its cwd), once a step is recorded
            with open("big.bin", "wb") as out:
                out.write(b"x" * 3_000_000)
        time.sleep(0.5)
        return step.actions[0]
"""


def test_an_episode_folder_past_its_size_limit_ends_the_episode_as_the_scaffolds_fault(
        tmp_path: Path, instant_model: ScriptedModelServer) -> None:  # fmt: skip
    (tmp_path / "one.yaml").write_text("name: one\nenvs:\n  minihack: {tasks: [MazeWalk-9x9], seeds: [0], max_steps: 40}\n")
    submission = write_submission(tmp_path / "sub", FILLS_ITS_FOLDER)
    run, results = run_eval(EvalOptions(submission=str(submission), suite=str(tmp_path / "one.yaml"), model=instant_model.url,
                                        runs_dir=str(tmp_path / "runs"), run_id="big", max_episode_bytes=1_000_000,
                                        show_progress=False))  # fmt: skip
    episode = read_run(run.root).episodes()[0]
    assert episode.status == "errored" and episode.error_kind == "scaffold"
    assert "passed its limit of 1000000 bytes" in str(episode.error) and 0 < episode.steps < 40
    assert results.complete  # scored: the scaffold's fault


def test_salvage_replaces_a_planted_link_and_never_applies_a_forged_path(tmp_path: Path) -> None:
    """What a worker leaves is rebuilt on the host: a memory folder that is a link is removed,
    not followed, and a recorded write outside the memory folder is not applied."""
    from harness.runs.read import read_steps
    from harness.runs.salvage import restore_memory

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine\n")
    folder = tmp_path / "episode"
    folder.mkdir()
    (folder / "memory").symlink_to(victim)
    forged = {"index": 0, "observation": "", "action": "north", "raw_action": "north", "valid": True, "reward": 0.0,
              "done": False, "progression": 0.0,
              "memory_ops": [{"op": "append", "path": "../../victim/escaped.txt", "ok": True, "text": "x", "chars_written": 1},
                             {"op": "append", "path": "notes.md", "ok": True, "text": "fine\n", "chars_written": 5}]}  # fmt: skip
    (folder / "steps.jsonl").write_text(json.dumps(forged) + "\n")
    files = restore_memory(folder, read_steps(folder))
    assert files == {"notes.md": "fine\n"}
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"] and (victim / "keep.txt").read_text() == "mine\n"
    assert not (folder / "memory").is_symlink() and (folder / "memory" / "notes.md").read_text() == "fine\n"


def test_the_seal_in_a_child_of_the_fork_server_rewrites_a_false_claim_as_the_host_does(
        tmp_path: Path, instant_model: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """A run's seals run in children of the fork server (runtime.local.seal_forked): a worker's
    false claim is rewritten there exactly as the host's own seal rewrites it; when the child
    fails, the host seals the episode itself."""
    import shutil

    import harness.runtime.local as local
    from harness.runs.jobs import EpisodeSpec
    from harness.runs.seal import seal_episode

    root = _run(tmp_path, HONEST, instant_model)
    folder = root / "episodes" / "crafter" / "crafter" / "0"
    spec = json.loads((folder / "job.json").read_text())["episode"]
    sealed = {}
    for how in ("here", "forked", "fallback"):
        copy = tmp_path / how
        shutil.copytree(folder, copy)
        claim = json.loads((copy / "episode.json").read_text())
        claim.update(progression=1.0, status="completed")  # the worker's own claim, as a scaffold could write it
        (copy / "episode.json").write_text(json.dumps(claim))
        copy_spec = EpisodeSpec(**{**spec, "episode_dir": str(copy)})
        if how == "here":
            seal_episode(copy_spec, False)
        elif how == "forked":
            local.seal_forked(copy_spec, False)
        else:
            with monkeypatch.context() as patched:
                patched.setattr(local, "run_forked", lambda *args, **kwargs: (1, "", "killed"))
                local.seal_forked(copy_spec, False)
        said = capsys.readouterr().err
        assert ("sealed in the harness's process instead" in said) == (how == "fallback"), said
        sealed[how] = json.loads((copy / "episode.json").read_text())
        assert sealed[how]["progression"] == 0.0 and sealed[how]["status"] == "truncated"
        sealed[how].pop("episode_dir", None)
    assert sealed["forked"] == sealed["here"] == sealed["fallback"]


def test_the_seal_takes_how_an_episode_ended_from_the_game_not_from_the_worker(
        tmp_path: Path, instant_model: ScriptedModelServer) -> None:  # fmt: skip
    """A worker claiming its truncated episode completed is sealed truncated; one that stops
    before its last step, with no error and no end from the game, is the scaffold's error."""
    from harness.runs.jobs import EpisodeSpec
    from harness.runs.seal import seal_episode

    root = _run(tmp_path, HONEST, instant_model)
    folder = root / "episodes" / "crafter" / "crafter" / "0"
    spec = json.loads((folder / "job.json").read_text())["episode"]
    claim = json.loads((folder / "episode.json").read_text())
    (folder / "episode.json").write_text(json.dumps({**claim, "status": "completed"}))
    assert seal_episode(EpisodeSpec(**spec), False)["status"] == "truncated"  # type: ignore[index]
    stopped = seal_episode(EpisodeSpec(**{**spec, "max_steps": 5}), False)  # 3 steps played of 5
    assert stopped is not None and stopped["status"] == "errored" and stopped["error_kind"] == "scaffold"
    assert "after 3 of 5 steps without an error" in stopped["error"]


def test_an_episode_the_harness_stopped_before_sealing_is_sealed_when_the_run_goes_on(
        tmp_path: Path, instant_model: ScriptedModelServer) -> None:  # fmt: skip
    """A harness killed between a worker's end and the seal leaves the worker's claim as
    episode.json; --resume seals it (the game's score) instead of taking the claim, and does not
    play it again."""
    from harness.runs.launches import read_launches

    root = _run(tmp_path, HONEST, instant_model)
    folder = root / "episodes" / "crafter" / "crafter" / "0"
    claim = json.loads((folder / "episode.json").read_text())
    claim.pop("game")
    claim["progression"] = 1.0  # as the worker could have claimed it
    (folder / "episode.json").write_text(json.dumps(claim))
    submission = tmp_path / "sub-run"
    run_eval(EvalOptions(submission=str(submission), suite=str(tmp_path / "two.yaml"), model=instant_model.url,
                         runs_dir=str(tmp_path / "runs"), run_id="run", resume=True, show_progress=False))  # fmt: skip
    episode = json.loads((folder / "episode.json").read_text())
    assert episode["progression"] == 0.0 and episode["game"]["agrees"] and episode["status"] == "truncated"
    assert len(read_launches(folder)) == 1  # sealed, not played again
    assert verify_run(root).verified
