"""Prompt tokens re-derived for runs on the embedded model.

The embedded model's GGUF carries its chat template and tokenizer; llama.cpp's server counts a
call's prompt tokens by applying that template to the messages it was sent and tokenizing the
result. The same is done here, with llama-cpp-python's own formatter and tokenizer (the
vocabulary only: no weights are loaded), so every call's recorded prompt_tokens is checked
exactly. Completion tokens are not: a constrained answer is often generated in other pieces
than its text tokenizes into, so they stay the server's claim; so do all counts of other servers.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from harness.runs.read import call_input
from harness.runs.records import MismatchRecord, StepRecord


class PromptTokens:
    """Counts a chat prompt's tokens as the embedded llama.cpp server does."""

    def __init__(self) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        from harness.models.embedded import embedded_gguf_path

        with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):
            self._llama = Llama(model_path=str(embedded_gguf_path()), vocab_only=True, verbose=False)
        eos, bos = self._llama.token_eos(), self._llama.token_bos()

        def text(token: int) -> str:
            return self._llama._model.token_get_text(token) if token != -1 else ""

        # as llama-cpp-python builds its "chat_template.default" handler from the GGUF's metadata
        self._format = Jinja2ChatFormatter(template=self._llama.metadata["tokenizer.chat_template"],
                                           eos_token=text(eos), bos_token=text(bos), stop_token_ids=[eos])  # fmt: skip

    def count(self, messages: list[dict[str, Any]]) -> int:
        formatted = self._format(messages=messages)  # type: ignore[arg-type]  # plain dicts, as the server gets them
        return len(self._llama.tokenize(formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True))


def prompt_token_problems(key: str, steps: list[StepRecord], messages: dict[str, dict[str, Any]],
                          counter: PromptTokens) -> list[MismatchRecord]:  # fmt: skip
    """The first call of an episode whose recorded prompt_tokens is not its prompt's count."""
    for step in steps:
        for index, call in enumerate(step.llm_calls):
            if call.error is not None or not call.input.get("messages"):
                continue
            counted = counter.count(call_input(call, messages))
            if counted != call.prompt_tokens:
                return [MismatchRecord(episode=key, step=step.index, problem=f"chat call {index} ({call.routine}) records "
                                       f"{call.prompt_tokens} prompt tokens; its prompt has {counted} on the embedded "
                                       f"model's tokenizer")]  # fmt: skip
    return []
