"""BALROG's naive agent (submissions/balrog-naive): what it sends, how it reads answers."""

from pathlib import Path

from harness.models.scripted import ScriptedModelServer, requested_choices
from harness.runs.read import read_run
from harness.tracks.eval import EvalOptions, run_eval

from conftest import episode_requests

NOTICE = "Your previous output did not contain a valid action. Defaulted to action: "


def _run(tmp_path: Path, env_yaml: str, answers: list[str], steps: int) -> tuple[list[dict], list, object]:
    """Requests the episode sent, its steps, and the results (run.json checked on the way)."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: naive\nenvs:\n{env_yaml}    seeds: [0]\n    max_steps: {steps}\n")
    replies = iter(answers)

    def respond(request: dict[str, object]) -> str:
        return "ok" if request.get("max_tokens") == 1 else next(replies)  # the preflight requests

    with ScriptedModelServer(respond, owned_by="vllm") as server:
        options = EvalOptions(submission="submissions/balrog-naive", suite=str(suite), model=server.url,
                              runs_dir=str(tmp_path / "runs"), run_id="naive", show_progress=False)  # fmt: skip
        run, results = run_eval(options)
        requests = episode_requests(server)
    recorded = read_run(run.root)
    # BALROG's sampling, as the calls sent it, and how the harness read the answers: in run.json
    assert recorded.record.sampling_used == {"max_tokens": [8192], "temperature": [1.0]}
    assert recorded.record.submission.answers == "exact"
    return requests, list(recorded.steps(recorded.episodes()[0])), results


def test_east_dot_plays_east_and_capitalized_north_plays_the_default_with_balrogs_notice(tmp_path: Path) -> None:
    requests, steps, _ = _run(tmp_path, "  minihack:\n    tasks: [MazeWalk-9x9]\n", ["east.", "North", "west"], 3)
    assert [s.action for s in steps] == ["east", "north", "west"]
    assert [s.valid for s in steps] == [True, False, True]  # "North" is no action name: BALROG defaults
    assert [s.raw_action for s in steps] == ["east", "North", "west"]
    third = requests[2]["messages"]
    # the model's answers as read, not the actions played, are the history
    assert [m["content"] for m in third if m["role"] == "assistant"] == ["east", "North"]
    assert third[-1]["content"].startswith("Current Observation:\ninventory:\n")
    assert f"\n\n\n{NOTICE}north\n\nObservation:\nmessage:\n" in third[-1]["content"]
    assert NOTICE not in requests[1]["messages"][-1]["content"]
    assert all(r["temperature"] == 1.0 and r["max_tokens"] == 8192 and not requested_choices(r) for r in requests)


def test_sixteen_observations_of_history_long_lived_part_only(tmp_path: Path) -> None:
    answers = [" Move West \n", "go west", "Do!"] * 7
    requests, steps, results = _run(tmp_path, "  crafter:\n", answers, 20)
    assert len(requests) == 20
    for index, request in enumerate(requests):
        messages = request["messages"]
        assert messages[0]["role"] == "user" and "22 achievements" in messages[0]["content"]
        assert len(messages) == 1 + min(2 * index + 1, 32)  # 16 observations and 16 answers at most
        assert messages[-1]["content"].startswith("Current Observation:\nYour status:\n- health: 9/9")
        for earlier in messages[1:-1]:
            if earlier["role"] == "user":
                assert earlier["content"].startswith("Observation:\n") and "Your status" not in earlier["content"]
    assert [s.action for s in steps[:3]] == ["Move West", "Noop", "Do"]
    assert results.envs["crafter"].invalid_action_rate == 7 / 20  # every "go west"
    assert [m["content"] for m in requests[3]["messages"] if m["role"] == "assistant"] == ["Move West", "go west", "Do"]
