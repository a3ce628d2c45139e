"""Issue 14: the scaffold track runs what a meta-LLM writes in containers, refuses to run it on
the host unless told to, and a hostile candidate is contained and recorded as its failure."""

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.models.scripted import ScriptedModelServer, first_choice_or
from harness.runs.layout import read_json
from harness.runtime.docker import LABEL
from harness.tracks.eval import EvalOptions
from harness.tracks.sandbox import SandboxRefused, candidate_runtime
from harness.tracks.scaffold import ScaffoldTrackOptions, run_scaffold_track

from conftest import write_submission

IDLE = """
from harness.agent import Scaffold, Step

class Agent(Scaffold):
    def step(self, step: Step) -> str:
        return self.chat([{"role": "user", "content": step.observation}], routine="act", choices=list(step.actions))
"""


@pytest.fixture()
def no_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")


def test_without_an_engine_candidates_run_only_where_the_user_allows(no_engine: None) -> None:
    with pytest.raises(SandboxRefused, match="no Docker-compatible engine answers.*--allow-unsandboxed"):
        candidate_runtime(None, allow_unsandboxed=False)
    with pytest.raises(SandboxRefused) as docker_asked:
        candidate_runtime("docker", allow_unsandboxed=True)  # asked for docker: never quietly local
    assert "--allow-unsandboxed" not in str(docker_asked.value)
    for runtime in ("local", "ray"):
        with pytest.raises(SandboxRefused, match=f"--runtime {runtime} runs the candidates"):
            candidate_runtime(runtime, allow_unsandboxed=False)
    allowed = candidate_runtime(None, allow_unsandboxed=True)
    assert (allowed.runtime, allowed.sandboxed) == ("local", False) and "no engine answered" in allowed.isolation


def test_the_track_command_refuses_before_any_episode_without_an_engine(no_engine: None, tmp_path: Path) -> None:
    submission = write_submission(tmp_path / "idle", IDLE, name="idle")
    result = CliRunner().invoke(main, ["track", "scaffold", str(submission), "--runs-dir", str(tmp_path / "runs"),
                                       "--leaderboards-dir", "", "--no-progress"])  # fmt: skip
    assert result.exit_code != 0 and "--allow-unsandboxed to accept the risk" in result.output
    assert not (tmp_path / "runs").exists()  # nothing ran, nothing recorded


# Each candidate attacks at import time and raises when the sandbox stops it, so the attack is
# recorded as the candidate's failure; a candidate that got through would pass its checks.
ATTACKS = {
    "shell": "subprocess.run(['touch', '{host}/shell-ran'], check=True)",
    "outside-read": "open('{host}/planted-secret').read()",
    "outside-network": "socket.create_connection(('1.1.1.1', 53), timeout=3)",
    "host-loopback": "socket.create_connection(('127.0.0.1', {port}), timeout=3)",
    "fork-bomb": "[os.fork() or (time.sleep(30), os._exit(0)) for _ in range(10000)]",
    # the model server needs a key: the relay adds it, and nothing the sandbox reads holds it
    # the key's prefix is put together, else the candidate's own file (searched too) would hold it
    "relay-key": "assert any('sk' + '-track' in text for text in [repr(dict(os.environ)), open('/proc/1/environ').read(), "
                 "*(open(p, errors='replace').read() for p in __import__('glob').glob('/submission/**', recursive=True) "
                 "if os.path.isfile(p))]), 'no key within reach'",
}
SECRET = "sk-track-0123456789"
ATTACKER = """
import os, socket, subprocess, time
from harness.agent import Scaffold, Step

ATTACK

class Agent(Scaffold):
    def step(self, step: Step) -> str:
        return step.actions[0]
"""


class AttackingMeta:
    """Proposes one attack per iteration, in ATTACKS' order."""

    def __init__(self, host: Path, port: int) -> None:
        self.host, self.port, self.asked = host, port, 0

    def __call__(self, request: dict[str, Any]) -> str:
        name = list(ATTACKS)[self.asked % len(ATTACKS)]
        self.asked += 1
        code = ATTACKER.replace("ATTACK", ATTACKS[name].format(host=self.host, port=self.port))
        return f"DIAGNOSIS: {name}\nAn attack.\nFILE: scaffold.py\n```python\n{code.strip()}\n```\n"


@pytest.mark.container
def test_hostile_candidates_are_contained_recorded_and_the_track_goes_on(engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_TRACK_KEY", SECRET)
    keyed_model = ScriptedModelServer(first_choice_or("noted"), owned_by="vllm", api_key=SECRET)
    keyed_model.start()
    host = tmp_path / "host"
    host.mkdir()
    (host / "planted-secret").write_text("the user's secret")
    suite = tmp_path / "one.yaml"
    suite.write_text("name: one\nenvs:\n  crafter: {tasks: [crafter], seeds: [0], max_steps: 2}\n")
    before = {c.id for c in engine.containers.list(all=True, filters={"label": LABEL})}
    with ScriptedModelServer(AttackingMeta(host, keyed_model.server_address[1]), model_name="meta") as meta:
        options = ScaffoldTrackOptions(
            eval=EvalOptions(submission=str(write_submission(tmp_path / "idle", IDLE, name="idle")), suite=str(suite),
                             model=keyed_model.url, runs_dir=str(tmp_path / "runs"), show_progress=False,
                             api_key_env="HARNESS_TRACK_KEY"),
            meta_model=meta.url, iterations=len(ATTACKS), patience=len(ATTACKS), repairs=0, smoke_steps=2,
            leaderboards_dir=str(tmp_path / "leaderboards"), selection_seeds="1",
        )  # fmt: skip
        root = run_scaffold_track(options, run_id="attacked")
    keyed_model.stop()
    assert len(keyed_model.requests) > 3  # iteration 0 and the report played on the keyed server, through the relay
    record = read_json(root / "track.json")
    assert record["candidates"] == "docker (sandboxed)"
    rounds = record["rounds"]
    assert [r["diagnosis"] for r in rounds[1:]] == list(ATTACKS)  # every attack was tried: the track went on
    for r in rounds[1:]:
        assert not r["kept"] and r["reason"].startswith("rejected after 1 attempts"), r
        assert "checking the scaffold" in r["reason"] or "Error" in r["reason"], r
    assert not (host / "shell-ran").exists()
    assert read_json(Path(rounds[0]["selection"]["run"]) / "run.json")["runtime"] == "docker"
    assert "docker (sandboxed)" in (tmp_path / "leaderboards" / "tracks" / "scaffold-one.md").read_text()
    assert {c.id for c in engine.containers.list(all=True, filters={"label": LABEL})} <= before  # all removed
    for path in (p for p in root.rglob("*") if p.is_file()):
        assert SECRET.encode() not in path.read_bytes(), path
