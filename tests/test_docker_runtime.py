"""The docker runtime against a real engine: same results as local, a real sandbox, cleanup."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.models.scripted import ScriptedModelServer, first_choice_or
from harness.runs.launches import read_launches
from harness.runs.layout import RunDir, read_json, read_jsonl
from harness.runtime.docker import LABEL
from harness.tracks.eval import EvalOptions, run_eval

from conftest import write_submission

pytestmark = pytest.mark.container

SUITE = "name: two\nenvs:\n  crafter: {tasks: [crafter], seeds: [0], max_steps: 4}\n  minihack: {tasks: [MazeWalk-9x9], seeds: [0], max_steps: 4}\n"


@pytest.fixture(scope="module")
def model() -> ScriptedModelServer:
    with ScriptedModelServer(first_choice_or("noted"), owned_by="vllm") as server:
        yield server


def _eval(tmp_path: Path, submission: str, model: ScriptedModelServer, runtime: str, run_id: str, **kw: object) -> RunDir:
    (tmp_path / "two.yaml").write_text(SUITE)
    run, _ = run_eval(EvalOptions(submission=submission, suite=str(tmp_path / "two.yaml"), model=model.url,
                                  runtime=runtime, runs_dir=str(tmp_path / "runs"), run_id=run_id,
                                  show_progress=False, **kw))  # type: ignore[arg-type]
    return run


def _labelled(engine: object, run_id: str) -> list[object]:
    """The containers of the run called run_id (labelled run_id-<hash of its folder>)."""
    every = engine.containers.list(all=True, filters={"label": LABEL})  # type: ignore[attr-defined]
    return [c for c in every if c.labels[LABEL].rsplit("-", 1)[0] == run_id]


def test_docker_runtime_gives_the_same_episodes_as_local(engine: object, model: ScriptedModelServer, tmp_path: Path) -> None:
    local = _eval(tmp_path, "submissions/automem-fixed-slots", model, "local", "local")
    docker = _eval(tmp_path, "submissions/automem-fixed-slots", model, "docker", "docker")
    keys = ("index", "observation", "action", "raw_action", "valid", "reward", "done", "progression", "memory_chars")
    for env, task in (("crafter", "crafter"), ("minihack", "MazeWalk-9x9")):
        a = read_jsonl(local.episode_dir(env, task, 0) / "steps.jsonl")
        b = read_jsonl(docker.episode_dir(env, task, 0) / "steps.jsonl")
        assert [{k: s[k] for k in keys} for s in a] == [{k: s[k] for k in keys} for s in b]
        assert [[c["output"] for c in s["llm_calls"]] for s in a] == [[c["output"] for c in s["llm_calls"]] for s in b]
        assert (local.episode_dir(env, task, 0) / "memory" / "log.md").read_text() == \
            (docker.episode_dir(env, task, 0) / "memory" / "log.md").read_text()  # fmt: skip
    assert read_json(docker.run_file)["runtime"] == "docker"
    assert _labelled(engine, "docker") == []  # everything it started is gone


ATTACK = """
import os, socket, time
from harness.agent import Scaffold, Step

class Agent(Scaffold):
    def reset(self, task):
        self.env = task.env

    def step(self, step: Step) -> str:
        if self.env == "crafter":
            ATTACK
        return self.chat([{"role": "user", "content": step.observation}], routine="act", choices=list(step.actions))
"""

ATTACKS = {
    # the model server listens on the host's loopback: only the relay may reach it
    "network": "socket.create_connection(('127.0.0.1', PORT), timeout=3)",
    "outside-network": "socket.create_connection(('1.1.1.1', 53), timeout=3)",
    "outside-read": "open('" + str(Path('README.md').resolve()) + "').read()",
    "submission-write": "open('/submission/evil.py', 'w').write('x')",
    "fork-bomb": "children = [os.fork() or (time.sleep(30), os._exit(0)) for _ in range(10000)]",
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_sandbox_refuses_the_attack_records_it_and_the_run_goes_on(attack: str, engine: object, model: ScriptedModelServer, tmp_path: Path) -> None:
    code = ATTACKS[attack].replace("PORT", str(model.server_address[1]))
    submission = write_submission(tmp_path / attack, ATTACK.replace("ATTACK", code), name=attack)
    run = _eval(tmp_path, str(submission), model, "docker", f"attack-{attack}")
    crafter = read_json(run.episode_dir("crafter", "crafter", 0) / "episode.json")
    assert crafter["status"] == "errored" and crafter["error_kind"] == "scaffold"
    assert any(word in crafter["error"] for word in ("OSError", "Error", "error")), crafter["error"]
    minihack = read_json(run.episode_dir("minihack", "MazeWalk-9x9", 0) / "episode.json")
    assert minihack["status"] == "truncated" and minihack["steps"] == 4  # the run went on, the model still answers
    assert not (submission / "evil.py").exists()
    assert _labelled(engine, f"attack-{attack}") == []


def test_an_interrupted_docker_run_removes_its_containers_and_a_killed_one_is_swept_on_resume(
        engine: object, model: ScriptedModelServer, tmp_path: Path) -> None:  # fmt: skip
    slow = write_submission(tmp_path / "slow", ATTACK.replace("ATTACK", "time.sleep(1)").replace('if self.env == "crafter"', "if True"))
    (tmp_path / "two.yaml").write_text(SUITE)
    command = [sys.executable, "-m", "harness.cli", "eval", str(slow), "--suite", str(tmp_path / "two.yaml"),
               "--model", model.url, "--runtime", "docker", "--runs-dir", str(tmp_path / "runs"), "--no-progress",
               "--max-steps", "30"]  # fmt: skip
    # SIGTERM stops the harness like Ctrl-C (a background job may ignore SIGINT); SIGKILL cannot be caught
    for stop, run_id in ((signal.SIGTERM, "interrupted"), (signal.SIGKILL, "killed")):
        process = subprocess.Popen(command + ["--run-id", run_id], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("agent" in c.name for c in _labelled(engine, run_id)):  # type: ignore[attr-defined]
            time.sleep(0.5)
        time.sleep(2)
        os.kill(process.pid, stop)
        process.wait(timeout=120)
        if stop == signal.SIGTERM:
            assert process.returncode != 0  # it was stopped, not finished
            assert _labelled(engine, run_id) == []
        else:
            assert _labelled(engine, run_id) != []  # nothing could clean up after SIGKILL...
            completed = subprocess.run(command + ["--run-id", run_id, "--resume", "--max-steps", "30"],
                                       capture_output=True, text=True, timeout=600)  # fmt: skip
            assert completed.returncode == 0, completed.stderr
            assert _labelled(engine, run_id) == []  # ...the resumed run swept it
            assert json.loads((tmp_path / "runs" / run_id / "run.json").read_text())["status"] == "complete"


def test_gpu_images_and_compose_file_pass_their_static_checks() -> None:
    from harness.runtime.images import check_gpu_images, dockerfile_facts

    assert check_gpu_images() == []
    assert dockerfile_facts("model")["from"].startswith("vllm/vllm-openai:")
    assert dockerfile_facts("env-nle")["from"] == "debian:bookworm-slim"


PROBE = """
import glob
from harness.agent import Scaffold, Step

class Agent(Scaffold):
    def step(self, step: Step) -> str:
        if step.index == 0:  # every socket this container can reach
            self.memory.write("sockets.txt", "\\n".join(sorted(glob.glob("/*/*.sock") + glob.glob("/*/*/*.sock"))))
        if step.index == 1:  # over the relay's request limit
            self.chat([{"role": "user", "content": "x" * 9_000_000}], routine="act")
        return self.chat([{"role": "user", "content": step.observation}], routine="act", choices=list(step.actions))
"""


def test_each_episode_reaches_only_its_own_sockets_and_an_oversized_request_is_the_scaffolds_error(
        engine: object, model: ScriptedModelServer, tmp_path: Path) -> None:  # fmt: skip
    (tmp_path / "pair.yaml").write_text("name: pair\nenvs:\n  crafter: {tasks: [crafter], seeds: [0, 1], max_steps: 4}\n")
    run, results = run_eval(EvalOptions(submission=str(write_submission(tmp_path / "probe", PROBE)), suite=str(tmp_path / "pair.yaml"),
                                        model=model.url, runtime="docker", workers=2, runs_dir=str(tmp_path / "runs"),
                                        run_id="probe", show_progress=False))  # fmt: skip
    for seed in (0, 1):
        folder = run.episode_dir("crafter", "crafter", seed)
        # the game's socket is gone once the worker holds its session: nobody else can connect
        assert (folder / "memory" / "sockets.txt").read_text().split() == ["/model/base.sock"]
        episode = read_json(folder / "episode.json")
        assert episode["status"] == "errored" and episode["error_kind"] == "request"
        steps = read_jsonl(folder / "steps.jsonl")
        assert [s["action"] is None for s in steps] == [False, True]  # the second step never reached the game
        refused = steps[-1]["llm_calls"][-1]
        assert "relay: the request has 9000" in refused["error"] and "over the limit" in refused["error"]
    assert results.complete and results.envs["crafter"].errored_scaffold == 2  # scored: the scaffold's fault


def test_the_relay_in_the_agent_image_can_check_a_hosted_servers_certificate(engine: object) -> None:
    from harness.runtime.images import ensure_image

    probe = "from harness.models.http import tls_context; print(tls_context().cert_store_stats()['x509_ca'])"
    output = engine.containers.run(ensure_image(engine, "agent")[0], ["-c", probe], entrypoint="python",  # type: ignore[attr-defined]
                                   network_mode="none", remove=True)  # fmt: skip
    assert int(output.decode().strip()) > 100  # a real CA bundle: HTTPS to a hosted API verifies


def test_a_scaffold_that_patches_the_game_at_import_scores_what_it_played_in_containers_too(
        engine: object, model: ScriptedModelServer, tmp_path: Path) -> None:  # fmt: skip
    from test_integrity import PATCHES_THE_GAME

    from harness.report.verify import verify_run

    run = _eval(tmp_path, str(write_submission(tmp_path / "patches", PATCHES_THE_GAME)), model, "docker", "patches")
    for env, task in (("crafter", "crafter"), ("minihack", "MazeWalk-9x9")):
        episode = read_json(run.episode_dir(env, task, 0) / "episode.json")
        assert episode["progression"] == 0.0 and episode["error_kind"] == "scaffold"
        assert episode["game"]["trace_progression"] == 1.0 and "disagrees with the game's own log" in episode["error"]
    assert verify_run(run).verified


PLANTS_LINKS = """
import json, os
from harness.agent import Scaffold, Step

VICTIM, VICTIM_DIR = "VICTIM_FILE", "VICTIM_FOLDER"


class Agent(Scaffold):
    def step(self, step: Step) -> str:
        self.memory.append("notes.md", "seen\\n")
        if step.index == 1:  # links where the host writes, a forged '..' write, then the worker dies
            for name in ("worker.log", "job.container.json"):
                if os.path.lexists("/episode/" + name):
                    os.unlink("/episode/" + name)
                os.symlink(VICTIM, "/episode/" + name)
            os.rename("/episode/memory", "/episode/memory-moved")
            os.symlink(VICTIM_DIR, "/episode/memory")
            forged = {"index": 1, "observation": step.observation, "action": step.actions[0], "raw_action": step.actions[0],
                      "valid": True, "reward": 0.0, "done": False, "progression": 0.0, "llm_calls": [],
                      "memory_ops": [{"op": "append", "path": "../" * 12 + VICTIM_DIR.lstrip("/") + "/escaped.txt",
                                      "chars_written": 1, "ok": True, "text": "x"}]}
            with open("/episode/steps.jsonl", "a") as out:
                out.write(json.dumps(forged) + "\\n")
            os._exit(3)
        return step.actions[0]
"""


def test_links_and_forged_paths_a_container_leaves_write_nothing_outside_the_run(
        engine: object, model: ScriptedModelServer, tmp_path: Path) -> None:  # fmt: skip
    victim, victim_dir = tmp_path / "victim.txt", tmp_path / "victim-folder"
    victim.write_text("the host's own file\n")
    victim_dir.mkdir()
    code = PLANTS_LINKS.replace("VICTIM_FILE", str(victim)).replace("VICTIM_FOLDER", str(victim_dir))
    run = _eval(tmp_path, str(write_submission(tmp_path / "links", code)), model, "docker", "links")
    assert victim.read_text() == "the host's own file\n"
    assert list(victim_dir.iterdir()) == []
    folder = run.episode_dir("crafter", "crafter", 0)
    assert not (folder / "worker.log").is_symlink() and not (folder / "memory").is_symlink()
    first, *_ = read_launches(folder)  # it died: salvaged, then launched again from step 0 (no state hook)
    assert first.outcome.startswith("worker: ") and first.placement["agent"].startswith("harness-links-")
    assert read_json(folder / "episode.json")["error_kind"] in ("worker", "scaffold")
