"""Shared fixtures: real servers, started once per session where they are slow to start."""

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from harness.models.embedded import LlamaCppServer

# The property tests check what is drawn, not how fast: on a 2-core machine running the game
# and worker processes of other tests, one draw can stall for seconds (CI failed on a 3 s draw).
settings.register_profile("shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("shared-machine")


@pytest.fixture(scope="session")
def embedded_model_url() -> Iterator[str]:
    """The real embedded model (SmolLM2-135M on llama.cpp), one server for the session."""
    server = LlamaCppServer(n_ctx=4096)
    yield server.start()
    server.stop()


import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402

from harness.models.scripted import ScriptedModelServer, first_choice_or  # noqa: E402


def write_submission(directory: Path, code: str, yaml_text: str | None = None, name: str = "test-agent") -> Path:
    """A submission folder with the given scaffold code."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "scaffold.py").write_text(textwrap.dedent(code))
    (directory / "submission.yaml").write_text(
        yaml_text if yaml_text is not None else
        f"name: {name}\ndescription: a test scaffold\nauthors: [tests]\nscaffold: scaffold.py:Agent\n"
    )
    return directory


def episode_requests(server: ScriptedModelServer) -> list[dict[str, object]]:
    """The chat requests of episodes (without the evaluation's one-token preflight request)."""
    return [r for r in server.requests if r.get("max_tokens") != 1]


@pytest.fixture()
def instant_model() -> Iterator[ScriptedModelServer]:
    """An instant OpenAI-compatible server: obeys choice constraints, else says 'noted'."""
    with ScriptedModelServer(first_choice_or("noted"), owned_by="vllm") as server:
        yield server


@pytest.fixture(scope="session")
def engine() -> object:
    """A Docker-compatible engine's client; the test is skipped, saying why, when none answers."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as error:  # no engine: say why, do not fail
        pytest.skip(f"no container engine answers ({error}); start one: eval \"$(../shared/tools/container-engine up)\"")
    return client
