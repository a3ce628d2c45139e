"""LoRA adapters: their identity (a content hash) and registration on a vLLM server.

An adapter is what its weights are, not what its folder is called: the memory track names
every trial's folder `adapter`, so a server that caches adapters by name would answer trial 2
with trial 1's weights. On vLLM an adapter is therefore registered under a name that carries
its content hash, and "already loaded" is accepted only because the name proves the content.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx

from harness.models.client import ModelUnavailableError

# The files that define a PEFT adapter's behaviour (config and weights); conversions (.gguf),
# training reports and logs do not change what it answers.
WEIGHT_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")


def adapter_hash(folder: Path) -> str:
    """sha256 over the adapter's config and weight files (names and bytes)."""
    folder = Path(folder)
    present = [name for name in WEIGHT_FILES if (folder / name).is_file()]
    if "adapter_config.json" not in present or len(present) < 2:
        raise FileNotFoundError(f"{folder} is not a PEFT adapter: it needs adapter_config.json and "
                                "adapter_model.safetensors (or .bin)")  # fmt: skip
    digest = hashlib.sha256()
    for name in present:
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes() + b"\0")
    return "sha256:" + digest.hexdigest()


def served_adapter_name(folder: Path, content_hash: str | None = None) -> str:
    """The model name an adapter is served under: its folder's name and its hash, e.g.
    `adapter-3f2a9c41d0b7`: two adapters with one folder name never share a server name."""
    digest = (content_hash or adapter_hash(folder)).removeprefix("sha256:")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(folder).name).strip("-") or "adapter"
    return f"{slug}-{digest[:12]}"


def load_lora_on_vllm(base_url: str, folder: Path, timeout_s: float = 300.0) -> str:
    """Register an adapter on a vLLM server (started with --enable-lora and
    VLLM_ALLOW_RUNTIME_LORA_UPDATING=True) under its hashed name; returns that name. The
    folder must be readable by the server at the same path."""
    name = served_adapter_name(folder)
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        response = httpx.post(f"{root}/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(folder)},
                              timeout=timeout_s)  # fmt: skip
    except httpx.HTTPError as error:
        raise ModelUnavailableError(f"vLLM at {base_url} did not answer while loading adapter {folder}: {error}",
                                    base_url) from error  # fmt: skip
    # The name carries the content hash, so "already loaded" means these very weights.
    if response.status_code >= 400 and "already" not in response.text:
        raise ModelUnavailableError(f"vLLM at {base_url} did not load adapter {folder} as {name}: "
                                    f"{response.text[:500]}", base_url, response.status_code)  # fmt: skip
    return name
