"""Chat with any OpenAI-compatible server (vLLM, llama.cpp, hosted APIs) over models.http.

Who caused a failure decides how it counts (docs/architecture.md, "Failure rules"):
- ModelRequestError: the server refused the request itself (400 bad request, 413 too large,
  422 invalid parameters: a prompt over the context length, a bad sampling value). The
  scaffold built that request: the episode ends and is scored at the progression it reached.
- ModelUnavailableError: the server did not answer (connection refused or dropped, timeout,
  5xx, 429) after retries with backoff (models.http: the `openai` client's policy), or it refused us as a client
  (401/403 key, 404 unknown model). Infrastructure: not scored, retried by `--resume`.
Both name the server.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from harness.models import tool_json
from harness.models.http import HttpFailure, JsonEndpoint

DEFAULT_MAX_TOKENS = 256
DEFAULT_TEMPERATURE = 0.0  # greedy unless the scaffold asks otherwise: answers are reproducible


class ModelError(RuntimeError):
    """A chat call that failed; names the server and the HTTP status, if there was one."""

    def __init__(self, message: str, server: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.server = server
        self.status = status
        self.retries = 0  # HTTP attempts beyond the first before it failed


class ModelUnavailableError(ModelError):
    """The model server did not answer after retries, or refused us as a client: infrastructure."""


class ModelRequestError(ModelError):
    """The server refused the request itself (400/413/422): the fault of whoever built it."""


# Statuses that say the request itself is wrong, whoever sends it; the rest are the server's
# (5xx), the connection's, or the client set-up's (401 key, 403, 404 model name).
REQUEST_FAULT_STATUSES = (400, 413, 422)


def classify_failure(failure: HttpFailure, server: str) -> ModelRequestError | ModelUnavailableError:
    """The harness's failure for a request that failed after the client's retries."""
    status = failure.status
    if failure.kind == "status" and status in REQUEST_FAULT_STATUSES:
        return ModelRequestError(f"model server {server} refused the request (HTTP {status}): {failure}", server, status)
    if failure.kind == "timeout":
        return ModelUnavailableError(f"model server {server} timed out: {failure}", server)
    if failure.kind == "connection":
        return ModelUnavailableError(f"model server {server} failed: connection error: {failure}", server)
    return ModelUnavailableError(f"model server {server} failed (HTTP {status}): {failure}", server, status)


@dataclass
class ChatResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    model: str
    adapter: str | None = None
    tool_calls: list[dict[str, Any]] | None = None  # OpenAI format: id, type, function {name, arguments}
    finish_reason: str | None = None
    served_model: str | None = None  # the model id the server says answered
    tool_mode: str | None = None  # how tools were offered: "native", or "json" (schema-constrained answer)
    sent_messages: list[dict[str, Any]] | None = None  # the messages sent, when they differ from the input
    raw_text: str | None = None  # the model's own text, when `text` is a part of it (json tool mode)
    retries: int = 0  # HTTP attempts beyond the first (models.http's retries)


def _first_choice(response: Any, server: str, retries: int) -> dict[str, Any]:
    """The answer's first choice; a 200 without one (no choices, no message) is the server's
    failure, not an empty answer the scaffold would be scored on."""
    choices = response.get("choices") if isinstance(response, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
        shape = "no choices" if not choices else "a choice without a message"
        failure = ModelUnavailableError(f"model server {server} answered HTTP 200 with {shape}: not a chat completion "
                                        f"(got {str(response)[:200]!r})", server, 200)  # fmt: skip
        failure.retries = retries
        raise failure
    return choice


def _without_none(value: Any) -> Any:
    """A JSON value with its null members left out, at every depth (as tool calls are recorded)."""
    if isinstance(value, dict):
        return {key: _without_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_none(item) for item in value]
    return value


def _tokens(usage: Any, name: str) -> int:
    value = usage.get(name) if isinstance(usage, dict) else None
    return int(value) if isinstance(value, (int, float)) else 0


def gbnf_choice_grammar(choices: list[str]) -> str:
    """A llama.cpp GBNF grammar whose only sentences are the given strings."""
    def literal(text: str) -> str:
        return json.dumps(text)  # GBNF string literals use JSON-style escapes
    return "root ::= " + " | ".join(literal(choice) for choice in choices)


class ChatClient:
    """One OpenAI-compatible endpoint. `kind` is detected from /v1/models when not given:
    'vllm', 'llamacpp' or 'openai' (anything else; constraints then go unenforced)."""

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str = "EMPTY",
        timeout_s: float = 600.0,
        max_retries: int = 4,
        kind: str | None = None,
        unix_socket: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        # A sandbox without network reaches its model through a Unix socket (see runtime.relay).
        # Every HTTP request is counted: the attempts beyond the first of a call are its retries.
        self._http = JsonEndpoint(self.base_url, api_key=api_key, timeout_s=timeout_s, max_retries=max_retries,
                                  unix_socket=unix_socket)  # fmt: skip
        self._model = model
        self._kind = kind

    @property
    def requests_sent(self) -> int:
        """Every HTTP attempt so far: those beyond a call's first are its retries."""
        return self._http.requests_sent

    def _models(self) -> list[dict[str, Any]]:
        answer = self._http.request("GET", "/models")
        data = answer.get("data") if isinstance(answer, dict) else None
        return [model for model in data if isinstance(model, dict)] if isinstance(data, list) else []

    def _describe_server(self) -> None:
        try:
            models = self._models()
        except HttpFailure as error:
            status = f" (HTTP {error.status})" if error.status else ""
            raise ModelUnavailableError(f"model server {self.base_url} did not answer{status}: {error}", self.base_url,
                                        error.status) from error  # fmt: skip
        if not models:
            raise ModelUnavailableError(f"model server {self.base_url} serves no model", self.base_url)
        if self._model is None:
            self._model = str(models[0].get("id") or "")
        if self._kind is None:
            owner = str(models[0].get("owned_by") or "")
            self._kind = "vllm" if owner == "vllm" else "llamacpp" if owner in ("me", "llamacpp") else "openai"

    def context_tokens(self) -> int | None:
        """The server's context length for its first model, where it says (vLLM's
        `max_model_len` in /v1/models), else None."""
        try:
            models = self._models()
        except HttpFailure:
            return None
        length = models[0].get("max_model_len") if models else None
        return int(length) if isinstance(length, int) else None

    @property
    def model(self) -> str:
        if self._model is None:
            self._describe_server()
        assert self._model is not None
        return self._model

    @property
    def kind(self) -> str:
        if self._kind is None:
            self._describe_server()
        assert self._kind is not None
        return self._kind

    @property
    def tool_mode(self) -> str:
        """How this server takes tools: "native" (OpenAI tool calling: vLLM, hosted APIs) or
        "json" (llama.cpp: a schema-constrained JSON answer, see models.tool_json)."""
        return "json" if self.kind == "llamacpp" else "native"

    def constraint(self, choices: list[str]) -> dict[str, Any]:
        """The request fields that restrict the answer to `choices` on this kind of server."""
        if self.kind == "vllm":
            return {"structured_outputs": {"choice": choices}}
        if self.kind == "llamacpp":
            return {"grammar": gbnf_choice_grammar(choices)}
        return {}

    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        choices: list[str] | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float = DEFAULT_TEMPERATURE,
        tool_call_prefix: str | None = None,
        **generation: Any,
    ) -> ChatResult:
        """One non-streaming chat completion (streaming loses token counts on llama.cpp).
        `tool_call_prefix` names the tool calls of a JSON-mode answer (the episode loop gives
        each call its own, so ids never repeat within an episode); by default it comes from
        the answer's text."""
        extra_body = dict(generation.pop("extra_body", {}) or {})
        if choices and generation.get("tools") and generation.get("tool_choice") != "none":
            raise ValueError("choices constrain a text answer: offer tools with it only as tool_choice='none'")
        if choices:
            extra_body.update(self.constraint(list(choices)))
            max_tokens = max(max_tokens, 8)
        tools = generation.pop("tools", None)
        tool_mode = self.tool_mode if tools else None
        sent = messages
        answers_json = False
        if tool_mode == "native":
            generation["tools"] = tools
        elif tool_mode == "json":
            tool_choice = generation.pop("tool_choice", "auto")
            parallel = generation.pop("parallel_tool_calls", True)
            sent = tool_json.request_messages(messages, list(tools))
            answers_json = tool_choice != "none"  # "none": the tools stay in the prompt, the answer is text
            if answers_json:
                schema = tool_json.answer_schema(list(tools), tool_choice, bool(parallel))
                generation["response_format"] = {"type": "json_object", "schema": schema}
        elif self.tool_mode == "json" and tool_json.has_tool_turns(messages):
            sent = tool_json.request_messages(messages, None)  # earlier tool turns, as this server reads them
        name = model or self.model
        started = time.perf_counter()
        # extra_body is merged at the top level, as openai does; the model and the messages come
        # last, so nothing a scaffold passes can replace what is recorded as sent
        body = {"max_tokens": max_tokens, "temperature": temperature, **generation, **extra_body,
                "model": name, "messages": sent}
        sent_before = self.requests_sent
        try:
            response = self._http.request("POST", "/chat/completions", body)
        except HttpFailure as error:
            failure = classify_failure(error, self.base_url)
            failure.retries = max(0, self.requests_sent - sent_before - 1)
            raise failure from error
        latency = time.perf_counter() - started
        retries = max(0, self.requests_sent - sent_before - 1)
        choice = _first_choice(response, self.base_url, retries)
        message = choice["message"]
        content = message.get("content")
        text = content if isinstance(content, str) else "" if content is None else json.dumps(content)
        calls = message.get("tool_calls") if isinstance(message.get("tool_calls"), list) else None
        usage = response.get("usage")
        raw_text = None
        if answers_json:
            raw_text = text
            text, json_calls = tool_json.parse_answer(text, tool_call_prefix or tool_json.call_prefix(text))
            calls = None
        finish_reason, served = choice.get("finish_reason"), response.get("model")
        result = ChatResult(
            text=text,
            prompt_tokens=_tokens(usage, "prompt_tokens"),
            completion_tokens=_tokens(usage, "completion_tokens"),
            latency_s=latency,
            model=name,
            tool_calls=[_without_none(call) for call in calls] if calls else None,
            finish_reason=str(finish_reason) if finish_reason else None,
            served_model=str(served) if served else None,
            tool_mode=tool_mode, sent_messages=sent if sent is not messages else None, raw_text=raw_text,
            retries=retries,
        )
        if answers_json:
            result.tool_calls = json_calls
        return result
