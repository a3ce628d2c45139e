"""What in run.json changes a result, and what differs between a run and a resumed session.

A run mixes no two set-ups: `--resume` compares these keys of the recorded run.json with
the session's own and refuses on any difference, naming each (a run's episodes all come
from one submission, model, adapter, suite, limits and harness version).
"""

from __future__ import annotations

from typing import Any

from harness.models.client import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE

# Dotted paths into run.json; each changes what an episode can score.
RESULT_KEYS = (
    "submission.hash",
    "model.endpoint", "model.name", "model.kind", "model.adapter_hash", "model.adapter_routines",
    "suite.name", "suite.envs", "suite.text",
    "harness_version",
    "sampling",
    "options.step_timeout_s", "options.model_timeout_s", "options.env_timeout_s", "options.episode_timeout_s",
    "options.max_episode_bytes",
)  # fmt: skip

# The chat defaults a scaffold gets when it does not choose (models.client): recorded so a
# change of default is a change of set-up.
DEFAULT_SAMPLING = {"temperature": DEFAULT_TEMPERATURE, "max_tokens": DEFAULT_MAX_TOKENS}

_ABSENT = object()


def _lookup(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _ABSENT
        value = value[part]
    return value


def setup_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """'key: recorded X, now Y' for every result-changing key that differs."""
    differences = []
    for path in RESULT_KEYS:
        before, now = _lookup(recorded, path), _lookup(current, path)
        if path == "sampling" and before in (_ABSENT, None):
            continue  # runs recorded before sampling was: nothing to compare against
        if before != now:
            shown_before = "(absent)" if before is _ABSENT else repr(before)
            shown_now = "(absent)" if now is _ABSENT else repr(now)
            differences.append(f"{path}: recorded {shown_before[:200]}, now {shown_now[:200]}")
    return differences
