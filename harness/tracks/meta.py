"""The meta-LLM: a client for any OpenAI-compatible endpoint, and parsing of its replies.

Replies are parsed leniently (fenced or bare), and what cannot be parsed is reported as a
clear, recorded failure (`MetaReplyError`) that the track counts; nothing is guessed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from harness.models.client import ChatClient, ChatResult

CHARS_PER_TOKEN = 4  # budgets are in tokens; text is measured as characters / 4 (approximate)


class MetaReplyError(ValueError):
    """A meta-LLM reply that does not have the requested form."""


@dataclass
class MetaCall:
    """One recorded exchange with the meta-LLM (stored verbatim with each iteration/trial)."""

    messages: list[dict[str, str]]
    reply: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float

    def to_json(self) -> dict[str, Any]:
        return {"messages": self.messages, "reply": self.reply, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "latency_s": round(self.latency_s, 3)}  # fmt: skip


@dataclass
class MetaModel:
    client: ChatClient
    max_tokens: int = 4096
    temperature: float = 0.2
    calls: list[MetaCall] = field(default_factory=list)

    def ask(self, messages: list[dict[str, str]]) -> str:
        result: ChatResult = self.client.chat(messages, max_tokens=self.max_tokens, temperature=self.temperature)
        self.calls.append(MetaCall(list(messages), result.text, result.prompt_tokens,
                                   result.completion_tokens, result.latency_s))  # fmt: skip
        return result.text


_FILE_BLOCK = re.compile(
    r"^(?:#+\s*)?FILE:\s*`?(?P<name>[\w./-]+)`?\s*\n```[\w+-]*\n(?P<body>.*?)\n```", re.MULTILINE | re.DOTALL
)
_ANY_PYTHON_BLOCK = re.compile(r"```(?:python|py)\s*\n(?P<body>.*?)\n```", re.DOTALL)


def parse_candidate(reply: str, default_file: str) -> tuple[str, dict[str, str]]:
    """(diagnosis, {relative path: content}) from a scaffold-rewrite reply."""
    match = re.search(r"DIAGNOSIS:\s*(.+)", reply)
    diagnosis = match.group(1).strip() if match else ""
    files = {m.group("name"): m.group("body") + "\n" for m in _FILE_BLOCK.finditer(reply)}
    if not files:
        blocks = _ANY_PYTHON_BLOCK.findall(reply)
        if len(blocks) == 1:
            files = {default_file: blocks[0] + "\n"}
    if not files:
        raise MetaReplyError("the reply holds no file: expected 'FILE: scaffold.py' followed by a ```python block")
    for name in files:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts or name.endswith(".yaml"):
            raise MetaReplyError(f"the reply writes {name!r}: only relative code files inside the submission")
    if not diagnosis:
        diagnosis = reply.strip().splitlines()[0][:200] if reply.strip() else "(no diagnosis)"
    return diagnosis, files


def parse_json_object(reply: str) -> dict[str, Any]:
    """The first JSON object in a reply (a fenced ```json block first, else anywhere): the
    standard library's decoder tried from each `{` in turn, so braces inside strings
    ("keep } in mind") and text around the object do not matter."""
    fenced = re.search(r"```(?:json)?\s*\n(.*?)\n\s*```", reply, re.DOTALL)
    for text in ([fenced.group(1)] if fenced else []) + [reply]:
        found = _first_object(text)
        if found is not None:
            return found
    raise MetaReplyError("the reply holds no JSON object")


def _first_object(text: str) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start >= 0:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def clip(text: str, chars: int) -> str:
    """`text` within `chars`, keeping its head and tail."""
    if len(text) <= chars:
        return text
    half = max(0, chars // 2 - 20)
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"
