"""Chat with any OpenAI-compatible server (vLLM, llama.cpp, hosted APIs) through `openai`.

Retries with exponential backoff on connection errors, 408/409/429 and 5xx come from the
`openai` client itself; what still fails after them raises ModelUnavailableError, which the
episode loop records as an infrastructure failure (not a bad move of the agent).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
import openai

try:  # the HTTP library openai itself uses: httpx2 from openai 3 on, httpx before
    import httpx2 as _openai_http
except ImportError:  # pragma: no cover - older openai
    _openai_http = httpx  # type: ignore[misc]

DEFAULT_MAX_TOKENS = 256


class ModelUnavailableError(RuntimeError):
    """The model server did not answer (after retries) or refused the request."""


@dataclass
class ChatResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    model: str
    adapter: str | None = None


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
        http_client = None
        if unix_socket:
            http_client = openai.DefaultHttpxClient(transport=_openai_http.HTTPTransport(uds=unix_socket), timeout=timeout_s)
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=api_key, timeout=timeout_s, max_retries=max_retries, http_client=http_client
        )
        self._model = model
        self._kind = kind

    def _describe_server(self) -> None:
        try:
            models = self._client.models.list().data
        except openai.OpenAIError as error:
            raise ModelUnavailableError(f"model server {self.base_url} did not answer: {error}") from error
        if not models:
            raise ModelUnavailableError(f"model server {self.base_url} serves no model")
        if self._model is None:
            self._model = models[0].id
        if self._kind is None:
            owner = str(getattr(models[0], "owned_by", "") or "")
            self._kind = "vllm" if owner == "vllm" else "llamacpp" if owner in ("me", "llamacpp") else "openai"

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

    def constraint(self, choices: list[str]) -> dict[str, Any]:
        """The request fields that restrict the answer to `choices` on this kind of server."""
        if self.kind == "vllm":
            return {"structured_outputs": {"choice": choices}}
        if self.kind == "llamacpp":
            return {"grammar": gbnf_choice_grammar(choices)}
        return {}

    def chat(
        self,
        messages: list[dict[str, str]],
        *,
        model: str | None = None,
        choices: list[str] | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float = 0.0,
        **generation: Any,
    ) -> ChatResult:
        """One non-streaming chat completion (streaming loses token counts on llama.cpp)."""
        extra_body = dict(generation.pop("extra_body", {}) or {})
        if choices:
            extra_body.update(self.constraint(list(choices)))
            max_tokens = max(max_tokens, 8)
        name = model or self.model
        started = time.perf_counter()
        try:
            response = self._client.chat.completions.create(
                model=name,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=temperature,
                extra_body=extra_body or None,
                **generation,
            )
        except openai.OpenAIError as error:
            raise ModelUnavailableError(f"model server {self.base_url} failed: {error}") from error
        latency = time.perf_counter() - started
        text = (response.choices[0].message.content or "") if response.choices else ""
        usage = response.usage
        return ChatResult(
            text=text,
            prompt_tokens=int(usage.prompt_tokens) if usage else 0,
            completion_tokens=int(usage.completion_tokens) if usage else 0,
            latency_s=latency,
            model=name,
        )


def load_lora_on_vllm(base_url: str, name: str, path: str, timeout_s: float = 300.0) -> None:
    """Ask a vLLM server (started with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True)
    to load an adapter under `name`; the path must be readable by the server."""
    root = base_url.rstrip("/").removesuffix("/v1")
    response = httpx.post(f"{root}/v1/load_lora_adapter", json={"lora_name": name, "lora_path": path}, timeout=timeout_s)
    if response.status_code >= 400 and "already" not in response.text:
        raise ModelUnavailableError(f"vLLM at {base_url} did not load adapter {name} from {path}: {response.text[:500]}")
