"""API keys for hosted model servers, read from environment variables only.

A key is named by the variable that holds it (`--api-key-env`, default OPENAI_API_KEY). Only
the variable's name travels (job files, run.json); the key itself is read where the request
is sent, so it is never written to a run, a trace or a log.
"""

from __future__ import annotations

import os

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
NO_KEY = "EMPTY"  # what local servers (vLLM, llama.cpp) accept


def api_key(variable: str | None) -> str:
    """The key in environment variable `variable`; NO_KEY when it is unset or empty."""
    if not variable:
        return NO_KEY
    return os.environ.get(variable) or NO_KEY


def key_is_set(variable: str | None) -> bool:
    return bool(variable and os.environ.get(variable))
