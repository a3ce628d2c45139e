"""PEFT LoRA adapter -> llama.cpp LoRA GGUF, for two-model inference on the embedded server.

Uses llama.cpp's own converter (`convert_lora_to_gguf.py`), taken from the llama-cpp-python
source package the Makefile builds from (kept in .cache/llama.cpp). llama.cpp does not reject
a PEFT folder: it logs a failure and silently serves the base model, so the conversion is
checked here and the server's log is checked when it starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness.train.base_model import cache_dir, resolve_base

CONVERTER_DIR_NAME = "llama.cpp"


def converter_dir() -> Path:
    folder = cache_dir() / CONVERTER_DIR_NAME
    if not (folder / "convert_lora_to_gguf.py").is_file():
        raise FileNotFoundError(
            f"llama.cpp's LoRA converter is missing from {folder}: run `make install-test` "
            "(it unpacks it from the llama-cpp-python source package)"
        )
    return folder


def adapter_to_gguf(adapter_dir: Path, base: str | None = None) -> Path:
    """The adapter as `<adapter_dir>/adapter.gguf` (converted once, reused after)."""
    adapter_dir = Path(adapter_dir).resolve()
    target = adapter_dir / "adapter.gguf"
    if target.is_file() and target.stat().st_mtime >= (adapter_dir / "adapter_model.safetensors").stat().st_mtime:
        return target
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    base_dir = resolve_base(base or config.get("base_model_name_or_path") or "embedded")
    if not (base_dir / "config.json").is_file():
        base_dir = resolve_base("embedded")
    tools = converter_dir()
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tools), str(tools / "gguf-py")])}
    completed = subprocess.run(
        [sys.executable, str(tools / "convert_lora_to_gguf.py"), "--base", str(base_dir),
         "--outfile", str(target), "--outtype", "f32", str(adapter_dir)],
        capture_output=True, text=True, env=environment, timeout=600,
    )  # fmt: skip
    if completed.returncode != 0 or not target.is_file():
        raise RuntimeError(f"converting {adapter_dir} to GGUF failed:\n{completed.stderr[-2000:]}")
    return target
