"""The BALROG-equivalent naive baseline (issue 10 part 8): what it sends and how it parses."""

from pathlib import Path

from harness.models.scripted import ScriptedModelServer, requested_choices
from harness.runs.read import read_run
from harness.tracks.eval import EvalOptions, run_eval

from conftest import episode_requests


def test_naive_baseline_sends_16_steps_of_history_and_parses_free_text_exactly(tmp_path: Path) -> None:
    suite = tmp_path / "crafter20.yaml"
    suite.write_text("name: crafter20\nenvs:\n  crafter:\n    seeds: [0]\n    max_steps: 20\n")
    answers = iter([" Move West \n", "go west", "Do"] * 10)
    def respond(request: dict[str, object]) -> str:
        return "ok" if request.get("max_tokens") == 1 else next(answers)  # the preflight request

    with ScriptedModelServer(respond, owned_by="vllm") as server:
        options = EvalOptions(submission="submissions/balrog-naive", suite=str(suite), model=server.url,
                              runs_dir=str(tmp_path / "runs"), run_id="naive", show_progress=False)  # fmt: skip
        run, results = run_eval(options)
        requests = episode_requests(server)
    assert len(requests) == 20
    for index, request in enumerate(requests):
        messages = request["messages"]
        assert isinstance(messages, list)
        assert messages[0]["role"] == "user" and "22 achievements" in messages[0]["content"]
        assert len(messages) == 1 + min(2 * index + 1, 32)  # 16 observations and 16 actions at most
        assert messages[-1]["content"].startswith("Current observation:\nVitals:")
        assert messages[-1]["content"].rstrip().endswith("Action:")
        assert not requested_choices(request) and request["max_tokens"] == 4096
    # The second answer ("go west") names no action: Noop is played and it counts as invalid;
    # the history holds what was played.
    steps = list(read_run(run.root).steps(read_run(run.root).episodes()[0]))
    assert [s.action for s in steps[:3]] == ["Move West", "Noop", "Do"]
    assert [m["content"] for m in requests[3]["messages"] if m["role"] == "assistant"] == ["Move West", "Noop", "Do"]
    assert results.envs["crafter"].invalid_action_rate == 7 / 20
    earlier = [m["content"] for m in requests[5]["messages"][1:-1] if m["role"] == "user"]
    assert all(text.startswith("Observation:\nYou see") and "Vitals" not in text for text in earlier)
