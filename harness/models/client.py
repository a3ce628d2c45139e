"""Chat with any OpenAI-compatible server (vLLM, llama.cpp, hosted APIs) through `openai`.

Who caused a failure decides how it counts (docs/architecture.md, "Failure rules"):
- ModelRequestError: the server refused the request itself (400 bad request, 413 too large,
  422 invalid parameters: a prompt over the context length, a bad sampling value). The
  scaffold built that request: the episode ends and is scored at the progression it reached.
- ModelUnavailableError: the server did not answer (connection refused or dropped, timeout,
  5xx, 429) after the `openai` client's own retries with backoff, or it refused us as a client
  (401/403 key, 404 unknown model). Infrastructure: not scored, retried by `--resume`.
Both name the server.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
import openai
from openai.types.chat import ChatCompletion

from harness.models import tool_json

try:  # the HTTP library openai itself uses: httpx2 from openai 3 on, httpx before
    import httpx2 as _openai_http
except ImportError:  # pragma: no cover - older openai
    _openai_http = httpx  # type: ignore[misc]

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


def classify_failure(error: openai.OpenAIError, server: str) -> ModelRequestError | ModelUnavailableError:
    """The harness's failure for an `openai` exception raised after the client's retries."""
    status = getattr(error, "status_code", None)
    if isinstance(error, openai.APIStatusError) and status in REQUEST_FAULT_STATUSES:
        return ModelRequestError(f"model server {server} refused the request (HTTP {status}): {error}", server, status)
    if isinstance(error, openai.APITimeoutError):
        return ModelUnavailableError(f"model server {server} timed out: {error}", server)
    if isinstance(error, openai.APIConnectionError):
        return ModelUnavailableError(f"model server {server} failed: connection error: {error}", server)
    return ModelUnavailableError(f"model server {server} failed (HTTP {status}): {error}", server, status)


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
    retries: int = 0  # HTTP attempts beyond the first (the openai client's retries)


def _first_choice(response: object, server: str, retries: int) -> Any:
    """The answer's first choice; a 200 without one (no choices, no message) is the server's
    failure, not an empty answer the scaffold would be scored on."""
    choices = getattr(response, "choices", None) if isinstance(response, ChatCompletion) else None
    choice = choices[0] if choices else None
    if choice is None or getattr(choice, "message", None) is None:
        shape = "no choices" if not choices else "a choice without a message"
        failure = ModelUnavailableError(f"model server {server} answered HTTP 200 with {shape}: not a chat completion "
                                        f"(got {str(response)[:200]!r})", server, 200)  # fmt: skip
        failure.retries = retries
        raise failure
    return choice


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
        self.requests_sent = 0
        transport = _openai_http.HTTPTransport(uds=unix_socket) if unix_socket else None
        http_client = openai.DefaultHttpxClient(timeout=timeout_s, event_hooks={"request": [self._count_request]},
                                                transport=transport)  # fmt: skip
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=api_key, timeout=timeout_s, max_retries=max_retries, http_client=http_client
        )
        self._model = model
        self._kind = kind

    def _count_request(self, request: Any) -> None:
        self.requests_sent += 1

    def _describe_server(self) -> None:
        try:
            models = self._client.models.list().data
        except openai.OpenAIError as error:
            raise ModelUnavailableError(f"model server {self.base_url} did not answer: {error}", self.base_url) from error
        if not models:
            raise ModelUnavailableError(f"model server {self.base_url} serves no model", self.base_url)
        if self._model is None:
            self._model = models[0].id
        if self._kind is None:
            owner = str(getattr(models[0], "owned_by", "") or "")
            self._kind = "vllm" if owner == "vllm" else "llamacpp" if owner in ("me", "llamacpp") else "openai"

    def context_tokens(self) -> int | None:
        """The server's context length for its first model, where it says (vLLM's
        `max_model_len` in /v1/models), else None."""
        try:
            models = self._client.models.list().data
        except openai.OpenAIError:
            return None
        length = getattr(models[0], "max_model_len", None) if models else None
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
            # The openai client's own retries, errors and response types, without its typed
            # transform of the parameters (~3 ms of CPU a call, most of the harness's CPU per
            # step with the seed agent): the body is plain JSON already.
            response = self._client.post("/chat/completions", body=body, cast_to=ChatCompletion)
        except openai.OpenAIError as error:
            failure = classify_failure(error, self.base_url)
            failure.retries = max(0, self.requests_sent - sent_before - 1)
            raise failure from error
        latency = time.perf_counter() - started
        retries = max(0, self.requests_sent - sent_before - 1)
        choice = _first_choice(response, self.base_url, retries)
        text = choice.message.content or ""
        calls = choice.message.tool_calls
        usage = response.usage
        raw_text = None
        if answers_json:
            raw_text = text
            text, json_calls = tool_json.parse_answer(text, tool_call_prefix or tool_json.call_prefix(text))
            calls = None
        result = ChatResult(
            text=text,
            prompt_tokens=int(usage.prompt_tokens) if usage else 0,
            completion_tokens=int(usage.completion_tokens) if usage else 0,
            latency_s=latency,
            model=name,
            tool_calls=[call.model_dump(mode="json", exclude_none=True) for call in calls] if calls else None,
            finish_reason=str(choice.finish_reason) if choice.finish_reason else None,
            served_model=str(response.model) if getattr(response, "model", None) else None,
            tool_mode=tool_mode, sent_messages=sent if sent is not messages else None, raw_text=raw_text,
            retries=retries,
        )
        if answers_json:
            result.tool_calls = json_calls
        return result
