"""verify, compare and leaderboard on real runs (instant scripted model)."""

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from test_track_scaffold import IDLE, WOOD

from harness.models.scripted import ScriptedModelServer
from harness.report.compare import CompareError, compare
from harness.report.leaderboard import leaderboard_rows, render
from harness.report.verify import verify_run
from harness.runs.layout import RunDir, read_json
from harness.runs.read import read_run
from harness.tracks.eval import EvalOptions, run_eval

from conftest import write_submission

SUITE = "name: wood\nenvs:\n  crafter: {tasks: [crafter], seeds: [0, 1, 2], max_steps: 25}\n  minihack: {tasks: [MazeWalk-9x9], seeds: [0], max_steps: 5}\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RunDir]:
    base = tmp_path_factory.mktemp("report")
    (base / "suite.yaml").write_text(SUITE)
    made = {}
    with ScriptedModelServer(lambda r: (r.get("structured_outputs") or {}).get("choice", ["x"])[0], owned_by="vllm") as model:
        for name, code in (("wood", WOOD), ("idle", IDLE)):
            submission = write_submission(base / name, code, name=name)
            made[name], _ = run_eval(EvalOptions(submission=str(submission), suite=str(base / "suite.yaml"),
                                                 model=model.url, runs_dir=str(base / "runs"), run_id=name,
                                                 show_progress=False))  # fmt: skip
    return made


def _copy(run: RunDir, target: Path) -> RunDir:
    import shutil

    shutil.copytree(run.root, target)
    return RunDir(target)


def test_an_untouched_run_verifies(runs: dict[str, RunDir]) -> None:
    report = verify_run(runs["wood"])
    assert report.verified and report.episodes_checked == 4 and report.steps_replayed == 80
    assert read_json(runs["wood"].root / "verification.json")["verified"]


def test_a_tampered_progression_is_caught(runs: dict[str, RunDir], tmp_path: Path) -> None:
    run = _copy(runs["idle"], tmp_path / "tampered")
    path = run.episode_dir("crafter", "crafter", 1) / "episode.json"
    path.write_text(json.dumps({**read_json(path), "progression": 0.5}))
    report = verify_run(run)
    assert not report.verified
    assert any(m.episode == "crafter/crafter/1" and "progression" in m.problem for m in report.mismatches)


def test_a_tampered_step_reward_is_caught_at_its_step(runs: dict[str, RunDir], tmp_path: Path) -> None:
    run = _copy(runs["wood"], tmp_path / "reward")
    steps_file = run.episode_dir("crafter", "crafter", 0) / "steps.jsonl"
    lines = steps_file.read_text().splitlines()
    record = json.loads(lines[7])
    record["reward"] = 5.0
    lines[7] = json.dumps(record)
    steps_file.write_text("\n".join(lines) + "\n")
    mismatch = next(m for m in verify_run(run).mismatches if m.episode == "crafter/crafter/0")
    assert mismatch.step == 7 and "reward" in mismatch.problem


def test_a_missing_step_is_caught(runs: dict[str, RunDir], tmp_path: Path) -> None:
    run = _copy(runs["wood"], tmp_path / "missing")
    steps_file = run.episode_dir("minihack", "MazeWalk-9x9", 0) / "steps.jsonl"
    lines = steps_file.read_text().splitlines()
    steps_file.write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    assert any("missing" in m.problem for m in verify_run(run).mismatches)


def test_a_changed_seed_is_caught(runs: dict[str, RunDir], tmp_path: Path) -> None:
    run = _copy(runs["wood"], tmp_path / "seed")
    folder = run.episode_dir("crafter", "crafter", 2)
    episode = read_json(folder / "episode.json")
    (folder / "episode.json").write_text(json.dumps({**episode, "seed": 7}))
    problems = [m.problem for m in verify_run(run).mismatches]
    assert any("not in the run's suite" in p for p in problems)


def test_a_rewritten_memory_file_is_caught(runs: dict[str, RunDir], tmp_path: Path) -> None:
    run = _copy(runs["wood"], tmp_path / "memory")
    (run.episode_dir("crafter", "crafter", 0) / "memory" / "trees.md").write_text("0,1\n")
    assert any("memory directory differs" in m.problem for m in verify_run(run).mismatches)


def test_compare_flags_the_worse_candidate(runs: dict[str, RunDir]) -> None:
    result = compare(runs["wood"], runs["idle"])
    assert result.verdict == "worse" and result.envs["crafter"]["pairs"] == 3
    assert result.envs["crafter"]["delta"] < 0 and result.overall["ci95"][1] < 0
    assert compare(runs["idle"], runs["wood"]).verdict == "better"
    # the minimal detectable difference of these 3 crafter pairs, from the spread of their deltas
    from harness.runs.power import mde

    scores = [{e.seed: e.progression for e in read_run(runs[name].root).episodes() if e.env == "crafter"}
              for name in ("wood", "idle")]  # fmt: skip
    spread = statistics.stdev(scores[1][seed] - scores[0][seed] for seed in scores[0])
    expected = mde(spread, 3) if spread > 0 else math.nan
    assert result.envs["crafter"]["mde"] == pytest.approx(expected, nan_ok=True)
    command = [sys.executable, "-m", "harness.cli", "compare", str(runs["wood"].root), str(runs["idle"].root), "--fail-if-worse"]
    completed = subprocess.run(command, capture_output=True, text=True)
    assert completed.returncode == 1 and "verdict: worse" in completed.stdout
    assert subprocess.run(command[:-1], capture_output=True).returncode == 0


def test_compare_refuses_different_step_caps(runs: dict[str, RunDir], tmp_path: Path) -> None:
    run = _copy(runs["idle"], tmp_path / "caps")
    info = read_json(run.run_file)
    info["suite"]["envs"]["crafter"]["max_steps"] = 2000
    run.run_file.write_text(json.dumps(info))
    with pytest.raises(CompareError, match="step caps differ"):
        compare(runs["wood"], run)


def test_leaderboard_sorts_by_overall_and_cites_runs(runs: dict[str, RunDir], tmp_path: Path) -> None:
    verify_run(runs["wood"])
    verify_run(runs["idle"])
    rows = leaderboard_rows([runs["idle"], runs["wood"]])
    assert [r["submission"] for r in rows] == ["wood", "idle"] and rows[0]["rank"] == 1
    assert rows[0]["verified"] == "yes" and rows[0]["submission hash"].startswith("sha256:")
    assert "overall MDE %" in rows[0] and "overall MDE %" in render(rows, "md")
    markdown = render(rows, "md")
    assert "| 1      | wood" in markdown or "| 1 " in markdown
    assert render(rows, "csv").splitlines()[0].startswith("rank,submission")
    assert json.loads(render(rows, "json"))[0]["submission"] == "wood"
    assert "<table id='leaderboard'>" in render(rows, "html")


def test_the_leaderboard_refuses_a_run_edited_after_its_verification_and_one_that_failed_it(
        runs: dict[str, RunDir], tmp_path: Path) -> None:  # fmt: skip
    from harness.report.leaderboard import UnverifiedRunError

    run = _copy(runs["wood"], tmp_path / "edited")
    (run.root / "verification.json").unlink(missing_ok=True)  # an earlier test verified the original
    with pytest.raises(UnverifiedRunError, match="never verified"):
        leaderboard_rows([run])
    assert verify_run(run).verified
    assert leaderboard_rows([run])[0]["verified"] == "yes"
    worker_log = run.episode_dir("crafter", "crafter", 0) / "worker.log"
    worker_log.write_text(worker_log.read_text() + "an edit\n")  # any file, even one no number comes from
    with pytest.raises(UnverifiedRunError, match=r"files changed since it was verified \(changed episodes/crafter/crafter/0/worker.log\)"):
        leaderboard_rows([run])
    shown = leaderboard_rows([run], allow_unverified=True)
    assert shown[0]["verified"].startswith("NO: its files changed")
    episode = run.episode_dir("crafter", "crafter", 1) / "episode.json"
    episode.write_text(json.dumps({**read_json(episode), "progression": 1.0}))
    assert not verify_run(run).verified  # a failed verification is bound to the files too, and refused
    with pytest.raises(UnverifiedRunError, match="its verification FAILED"):
        leaderboard_rows([run])
    command = [sys.executable, "-m", "harness.cli", "leaderboard", str(run.root), "--allow-unsandboxed"]
    refused = subprocess.run(command, capture_output=True, text=True)
    assert refused.returncode == 1 and "--allow-unverified" in refused.stderr


def test_compare_refuses_runs_that_planned_different_seeds(runs: dict[str, RunDir], tmp_path: Path) -> None:
    run = _copy(runs["idle"], tmp_path / "seeds")
    info = read_json(run.run_file)
    info["suite"]["envs"]["crafter"]["seeds"] = [0, 1]  # the shared episodes would still pair
    run.run_file.write_text(json.dumps(info))
    with pytest.raises(CompareError, match=r"planned different episodes.*crafter/crafter/2"):
        compare(runs["wood"], run)


def test_a_narrowed_suite_never_goes_by_the_full_suites_name() -> None:
    from harness.runs.suites import load_suite, narrow

    standard = load_suite("standard")
    assert narrow(standard).name == "standard"
    assert narrow(standard, seeds=(0,), max_steps=5).name == "standard[seeds=0;max_steps=5]"
    assert narrow(standard, envs=("crafter",)).name == "standard[envs=crafter]"
    smoke = load_suite("smoke")
    assert narrow(smoke, seeds=(0,), max_steps=6).name == "smoke"  # what it already was: not narrowed


def _edit_json(path: Path, keys: tuple[str, ...], value: object) -> None:
    data = read_json(path)
    target = data
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("keys, value", [
    (("envs", "crafter", "write_to_search_ratio"), 9.0),
    (("envs", "crafter", "consult_before_write"), 0.123),
    (("envs", "minihack", "growth_chars_per_step"), 1.5),
    (("envs", "crafter", "invalid_action_rate"), 0.5),
    (("envs", "crafter", "tokens_prompt"), 1),
    (("envs", "crafter", "progression_ci95"), [0.0, 0.9]),
    (("overall", "progression_mean"), 0.9),
    (("overall", "progression_ci95"), [0.0, 0.9]),
    (("complete",), False),
    (("episodes_scored",), 3),
])  # fmt: skip
def test_editing_any_number_of_results_json_fails_verify_and_names_it(runs: dict[str, RunDir], tmp_path: Path,
                                                                      keys: tuple[str, ...], value: object) -> None:  # fmt: skip
    run = _copy(runs["wood"], tmp_path / "edited")
    _edit_json(run.results_file, keys, value)
    report = verify_run(run)
    assert not report.verified
    named = [m.problem.split(" is ")[0] for m in report.mismatches]
    assert named and all(name.startswith(".".join(keys)) for name in named), named  # e.g. progression_ci95[0]


@pytest.mark.parametrize("keys, value", [
    (("memory", "writes"), 99), (("memory", "write_to_search_ratio"), 0.5), (("memory", "chars_final"), 1),
    (("tokens", "prompt"), 7), (("invalid_actions",), 3), (("steps",), 19), (("reward_total",), 4.0),
])  # fmt: skip
def test_editing_an_episode_number_fails_verify_and_names_it(runs: dict[str, RunDir], tmp_path: Path,
                                                             keys: tuple[str, ...], value: object) -> None:  # fmt: skip
    run = _copy(runs["wood"], tmp_path / "edited")
    _edit_json(run.episode_dir("crafter", "crafter", 1) / "episode.json", keys, value)
    problems = [(m.episode, m.problem) for m in verify_run(run).mismatches]
    assert ("crafter/crafter/1", f"episode.json {'.'.join(keys)} is {value}, its steps give ") in \
           [(e, p[: p.index("give ") + 5]) for e, p in problems if "give " in p]  # fmt: skip


def test_a_deleted_episode_is_flagged_missing(runs: dict[str, RunDir], tmp_path: Path) -> None:
    import shutil

    run = _copy(runs["wood"], tmp_path / "deleted")
    shutil.rmtree(run.episode_dir("crafter", "crafter", 2))
    problems = {(m.episode, m.problem) for m in verify_run(run).mismatches}
    assert ("crafter/crafter/2", "a planned episode has no record (missing)") in problems


def test_a_duplicated_episode_is_flagged(runs: dict[str, RunDir], tmp_path: Path) -> None:
    import shutil

    run = _copy(runs["wood"], tmp_path / "duplicated")
    shutil.rmtree(run.episode_dir("crafter", "crafter", 2))  # a bad seed replaced by a copy of a good one
    shutil.copytree(run.episode_dir("crafter", "crafter", 0), run.episode_dir("crafter", "crafter", 2))
    problems = [(m.episode, m.problem) for m in verify_run(run).mismatches]
    assert ("crafter/crafter/0", "the episode is recorded 2 times (duplicated)") in problems
    assert ("crafter/crafter/2", "a planned episode has no record (missing)") in problems


def test_a_changed_suite_is_flagged_even_when_everything_else_agrees(runs: dict[str, RunDir], tmp_path: Path) -> None:
    import shutil

    from harness.runs.results import aggregate

    run = _copy(runs["idle"], tmp_path / "suite")
    _edit_json(run.run_file, ("suite", "envs", "crafter", "seeds"), [0, 1])  # drop seed 2, and its episode
    shutil.rmtree(run.episode_dir("crafter", "crafter", 2))
    aggregate(run)  # results.json rewritten to agree with the edited records
    mismatches = verify_run(run).mismatches
    assert [m.episode for m in mismatches] == ["run.json/suite"] and "in crafter" in mismatches[0].problem


def test_verify_cli_names_each_difference(runs: dict[str, RunDir], tmp_path: Path) -> None:
    run = _copy(runs["wood"], tmp_path / "cli")
    _edit_json(run.results_file, ("envs", "crafter", "tokens_completion"), 5)
    completed = subprocess.run([sys.executable, "-m", "harness.cli", "verify", str(run.root)], capture_output=True, text=True)
    assert completed.returncode == 1
    assert "MISMATCH results.json: envs.crafter.tokens_completion is 5, the episodes give" in completed.stdout


def test_compare_refuses_runs_whose_models_read_different_text(runs: dict[str, RunDir], tmp_path: Path) -> None:
    run = _copy(runs["idle"], tmp_path / "text")
    info = read_json(run.run_file)
    assert info["suite"]["text"] == {"observation": "balrog", "instructions": "balrog"}
    info["suite"]["text"] = {"observation": "rich", "instructions": "balrog"}
    run.run_file.write_text(json.dumps(info))
    with pytest.raises(CompareError, match="read different text"):
        compare(runs["wood"], run)
    report = verify_run(run)  # the edit is caught: the name stands for the standard text
    assert any("text variants" in m.problem for m in report.mismatches)


def test_a_text_variant_run_replays_and_verifies_under_its_own_name(tmp_path: Path) -> None:
    (tmp_path / "suite.yaml").write_text(SUITE)
    with ScriptedModelServer(lambda r: (r.get("structured_outputs") or {}).get("choice", ["x"])[0], owned_by="vllm") as model:
        submission = write_submission(tmp_path / "wood", WOOD, name="wood")
        run, _ = run_eval(EvalOptions(submission=str(submission), suite=str(tmp_path / "suite.yaml"), model=model.url,
                                      runs_dir=str(tmp_path / "runs"), run_id="rich", env=("minihack",),
                                      observation="rich", instructions="tips", show_progress=False))  # fmt: skip
    info = read_json(run.run_file)
    assert info["suite"]["name"] == "wood[envs=minihack;observation=rich;instructions=tips]"
    assert info["suite"]["text"] == {"observation": "rich", "instructions": "tips"}
    first = json.loads((run.episode_dir("minihack", "MazeWalk-9x9", 0) / "steps.jsonl").read_text().splitlines()[0])
    assert first["observation"].startswith("Message: ") and "Nearby:" in first["observation"]
    assert verify_run(run).verified


def test_the_leaderboard_publishes_unsandboxed_runs_only_of_reviewed_code(runs: dict[str, RunDir], tmp_path: Path) -> None:
    from harness.report.leaderboard import UnsandboxedRunError

    reviewed = tmp_path / "submissions"
    verify_run(runs["wood"])
    with pytest.raises(UnsandboxedRunError, match=r"wood ran unsandboxed \(runtime local\)"):
        leaderboard_rows([runs["wood"]], submissions_dir=reviewed)  # nothing reviewed here yet
    import shutil

    shutil.copytree(read_json(runs["wood"].run_file)["submission"]["directory"], reviewed / "wood")
    rows = leaderboard_rows([runs["wood"]], submissions_dir=reviewed)  # the same files, reviewed: published
    assert rows[0]["sandboxed"] == "no"
    (reviewed / "wood" / "scaffold.py").write_text("# changed after the run\n")
    with pytest.raises(UnsandboxedRunError):
        leaderboard_rows([runs["wood"]], submissions_dir=reviewed)  # the run's code is not the reviewed code
    command = [sys.executable, "-m", "harness.cli", "leaderboard", str(runs["wood"].root), "--submissions-dir", str(reviewed)]
    refused = subprocess.run(command, capture_output=True, text=True)
    assert refused.returncode == 1 and "--allow-unsandboxed" in refused.stderr
    allowed = subprocess.run(command + ["--allow-unsandboxed"], capture_output=True, text=True)
    assert allowed.returncode == 0 and "| sandboxed" in allowed.stdout


@pytest.mark.parametrize("edit", ["deleted", "renumbered", "outcome", "not a launch"])
def test_an_edited_launch_record_fails_verify_and_is_named(runs: dict[str, RunDir], tmp_path: Path, edit: str) -> None:
    run = _copy(runs["wood"], tmp_path / "launches")
    path = run.episode_dir("crafter", "crafter", 1) / "launches.jsonl"
    (launch,) = [json.loads(line) for line in path.read_text().splitlines()]
    if edit == "deleted":
        path.unlink()
    elif edit == "renumbered":
        path.write_text(json.dumps({**launch, "launch": 2}) + "\n")
    elif edit == "outcome":  # a failed launch passed off as the one that counted
        path.write_text(json.dumps({**launch, "outcome": "worker: worker exited with code -9"}) + "\n")
    else:
        path.write_text(json.dumps({"launch": 1}) + "\n")
    problems = [m.problem for m in verify_run(run).mismatches if m.episode == "crafter/crafter/1"]
    assert any("launch" in problem for problem in problems), problems
