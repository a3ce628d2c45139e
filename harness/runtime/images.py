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
