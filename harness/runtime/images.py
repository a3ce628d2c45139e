"""The harness's container images: names, source-pinned tags, building (docker SDK).

A tag is a hash of everything an image is built from (its Dockerfile, pyproject.toml and the
harness sources), so a changed harness never runs in a stale image.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
IMAGES_DIR = REPOSITORY_ROOT / "images"
BUILDABLE = ("env-crafter", "env-nle", "agent")  # built and run here; model and trainer need GPUs
ENV_IMAGE = {"crafter": "env-crafter", "minihack": "env-nle", "nethack": "env-nle"}


def source_hash(name: str) -> str:
    digest = hashlib.sha256((IMAGES_DIR / name / "Dockerfile").read_bytes())
    digest.update((REPOSITORY_ROOT / "pyproject.toml").read_bytes())
    for path in sorted((REPOSITORY_ROOT / "harness").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(REPOSITORY_ROOT).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def image_tag(name: str) -> str:
    return f"harness-{name}:{source_hash(name)}"


def find_image(client: Any, tag: str) -> Any | None:
    import docker

    for candidate in (tag, f"docker.io/library/{tag}", f"localhost/{tag}", f"docker.io/{tag}"):
        try:
            return client.images.get(candidate)
        except docker.errors.ImageNotFound:
            continue
    return None


def ensure_image(client: Any, name: str, log: Any = print) -> tuple[str, float]:
    """The image's tag, built first if missing; returns (tag, seconds spent building)."""
    tag = image_tag(name)
    if find_image(client, tag) is not None:
        return tag, 0.0
    started = time.monotonic()
    log(f"building image {tag} (images/{name}/Dockerfile)")
    client.images.build(path=str(REPOSITORY_ROOT), dockerfile=f"images/{name}/Dockerfile", tag=tag, rm=True)
    return tag, time.monotonic() - started


GPU_IMAGES = {
    # name: (base image prefix, words the entry point must hold)
    "model": ("vllm/vllm-openai:", ["vllm.entrypoints.openai.api_server", "--enable-lora", "--max-lora-rank"]),
    "trainer": ("pytorch/pytorch:", ["harness", "train"]),
}


def dockerfile_facts(name: str) -> dict[str, Any]:
    """Base image, entry point and environment of an image's Dockerfile (continuation lines joined)."""
    import json

    text = (IMAGES_DIR / name / "Dockerfile").read_text().replace("\\\n", " ")
    facts: dict[str, Any] = {"from": None, "entrypoint": [], "env": ""}
    for line in text.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction == "FROM":
            facts["from"] = rest.strip()
        elif instruction == "ENTRYPOINT":
            facts["entrypoint"] = json.loads(rest)
        elif instruction == "ENV":
            facts["env"] += rest + " "
    return facts


def check_gpu_images() -> list[str]:
    """Static checks of the images that need a GPU host (they are not built here)."""
    import yaml

    problems = []
    for name, (base, words) in GPU_IMAGES.items():
        facts = dockerfile_facts(name)
        if not str(facts["from"]).startswith(base):
            problems.append(f"images/{name}: base {facts['from']!r} is not {base}*")
        missing = [w for w in words if w not in " ".join(facts["entrypoint"])]
        if missing:
            problems.append(f"images/{name}: entry point {facts['entrypoint']} lacks {missing}")
    if "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" not in dockerfile_facts("model")["env"]:
        problems.append("images/model: runtime adapter loading (VLLM_ALLOW_RUNTIME_LORA_UPDATING) is off")
    compose = yaml.safe_load((IMAGES_DIR / "compose.yaml").read_text())
    services = compose.get("services", {})
    for required in ("model", "env-crafter", "env-nle", "agent", "trainer"):
        if required not in services:
            problems.append(f"images/compose.yaml: no service {required!r}")
    for gpu_service in ("model", "trainer"):
        devices = services.get(gpu_service, {}).get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
        if not any("gpu" in d.get("capabilities", []) for d in devices):
            problems.append(f"images/compose.yaml: {gpu_service} reserves no GPU")
    if services.get("agent", {}).get("network_mode") != "none":
        problems.append("images/compose.yaml: the agent service must have no network")
    return problems
