"""Hosted servers (issue 11 part 6): the API key comes from an environment variable, reaches
the server, and is never written anywhere in a run."""

from pathlib import Path

import pytest

from harness.models.scripted import ScriptedModelServer, first_choice_or
from harness.tracks.common import meta_model
from harness.tracks.eval import EvalError, EvalOptions, run_eval

from conftest import write_submission

SECRET = "sk-test-0123456789abcdef"
PLAYER = """
from harness.agent import Scaffold, Step

class Agent(Scaffold):
    def step(self, step: Step) -> str:
        return self.chat([{"role": "user", "content": step.observation}], routine="act", choices=list(step.actions))
"""


def _options(tmp_path: Path, url: str, **changes: object) -> EvalOptions:
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: tiny\nenvs:\n  crafter: {seeds: [0], max_steps: 3}\n")
    submission = write_submission(tmp_path / "sub", PLAYER)
    return EvalOptions(submission=str(submission), suite=str(suite), model=url, runs_dir=str(tmp_path / "runs"),
                       run_id="keyed", show_progress=False, api_key_env="HARNESS_TEST_KEY", **changes)  # type: ignore[arg-type]


def test_the_key_reaches_the_server_and_no_file_of_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_TEST_KEY", SECRET)
    with ScriptedModelServer(first_choice_or("noted"), owned_by="vllm", api_key=SECRET) as server:
        run, results = run_eval(_options(tmp_path, server.url))
        assert results.complete and len(server.requests) == 5 + 3  # the preflight (plain, 3 tool probes, choices) and three steps
    files = [path for path in run.root.rglob("*") if path.is_file()]
    assert len(files) > 5
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    assert '"api_key_env": "HARNESS_TEST_KEY"' in (run.root / "run.json").read_text()


def test_a_missing_key_stops_the_run_before_any_episode_and_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_TEST_KEY", raising=False)
    with ScriptedModelServer(first_choice_or("noted"), owned_by="vllm", api_key=SECRET) as server:
        with pytest.raises(EvalError, match=r"401.*\$HARNESS_TEST_KEY, which is not set"):
            run_eval(_options(tmp_path, server.url))
    assert not list((tmp_path / "runs").rglob("episode.json"))


# Looks for the key everywhere the sandbox lets it look, and keeps what it saw in its memory
# (part of the run): its environment, its processes', the files it may open.
KEY_HUNTER = """
import os
from pathlib import Path
from harness.agent import Scaffold, Step

def _seen():
    seen = [repr(dict(os.environ))]
    for path in [Path("/proc/self/environ"), Path("/proc/1/environ"), *Path("/model").glob("*"), *Path("/env").glob("*"),
                 *Path("/tmp").rglob("*"), *Path("/episode").glob("*.json")]:
        try:
            seen.append(f"{path}: {path.read_bytes()[:100000]!r}")
        except OSError as error:
            seen.append(f"{path}: {error}")
    return "\\n".join(seen)

class Agent(Scaffold):
    def step(self, step: Step) -> str:
        if step.index == 0:
            self.memory.write("seen.txt", _seen())
        return self.chat([{"role": "user", "content": step.observation}], routine="act", choices=list(step.actions))
"""


@pytest.mark.container
def test_in_docker_the_relay_adds_the_key_and_the_sandbox_never_holds_it(engine: object, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("HARNESS_TEST_KEY", SECRET)
    with ScriptedModelServer(first_choice_or("noted"), owned_by="vllm", api_key=SECRET) as server:
        options = _options(tmp_path, server.url, runtime="docker")
        write_submission(Path(options.submission), KEY_HUNTER)
        run, results = run_eval(options)
        assert results.complete and len(server.requests) == 5 + 3  # every request carried the key (else 401)
    seen = (run.episode_dir("crafter", "crafter", 0) / "memory" / "seen.txt").read_text()
    assert "HOME" in seen and "/proc/1/environ" in seen  # the hunt ran
    for path in (p for p in run.root.rglob("*") if p.is_file()):
        assert SECRET.encode() not in path.read_bytes(), path


def test_the_meta_model_sends_its_own_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_META_KEY", SECRET)
    with ScriptedModelServer(lambda request: "a plan", api_key=SECRET) as server:
        with meta_model(server.url, None, 64, "HARNESS_META_KEY") as meta:
            assert meta.client.chat([{"role": "user", "content": "hi"}]).text == "a plan"
        with meta_model(server.url, None, 64, "HARNESS_UNSET_KEY") as meta:
            with pytest.raises(Exception, match="401"):
                meta.client.chat([{"role": "user", "content": "hi"}])


def test_the_cli_default_is_the_harness_default_and_the_cli_needs_no_model_client() -> None:
    import subprocess
    import sys

    from harness import cli_options, cli_tracks
    from harness.models.keys import DEFAULT_API_KEY_ENV

    assert cli_options.DEFAULT_API_KEY_ENV == cli_tracks.DEFAULT_API_KEY_ENV == DEFAULT_API_KEY_ENV
    # the env image runs `harness env serve` without openai/httpx installed
    probe = "import sys; sys.modules['httpx'] = None; sys.modules['openai'] = None; import harness.cli"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0
