"""Shared fixtures: real servers, started once per session where they are slow to start."""

from collections.abc import Iterator

import pytest

from harness.models.embedded import LlamaCppServer


@pytest.fixture(scope="session")
def embedded_model_url() -> Iterator[str]:
    """The real embedded model (SmolLM2-135M on llama.cpp), one server for the session."""
    server = LlamaCppServer(n_ctx=4096)
    yield server.start()
    server.stop()
