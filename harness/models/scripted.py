"""A scripted OpenAI-compatible server: answers come from a Python function, instantly.

For tests (a meta-LLM that returns known candidates, a server that fails on cue) and for the
benchmark of the harness's own overhead (a model that costs nothing). It speaks just enough
of the API: GET /v1/models and POST /v1/chat/completions (non-streaming). Every request body
is kept in `requests` so tests can check what the harness sent.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

# A responder answers a chat request with text, or with a message dict ({"content": ...,
# "tool_calls": [...]}) to answer with tool calls as a tool-calling server does, or with a
# ScriptedAnswer to set everything a server says (usage, finish reason, model, an error).
Responder = Callable[[dict[str, Any]], Any]


@dataclass
class ScriptedAnswer:
    """A whole answer: the message, or an HTTP error status with its message."""

    message: dict[str, Any] = field(default_factory=dict)  # {"content": ..., "tool_calls": [...]}
    usage: dict[str, int] | None = None  # {"prompt_tokens", "completion_tokens"}; None: counted in words
    finish_reason: str | None = None
    model: str | None = None  # the model the answer names (None: the one asked for)
    status: int = 200
    error: str = ""


def first_choice_or(text: str) -> Responder:
    """A responder that obeys a choice constraint (answers its first option), else `text`."""
    def respond(request: dict[str, Any]) -> str:
        choices = requested_choices(request)
        return choices[0] if choices else text
    return respond


def answer_by_content(request: dict[str, Any]) -> Any:
    """A responder whose answers depend only on the request's content (never on timing or order):
    an episode asks the same questions whether it ran whole, was resumed or moved to another
    node, so its records come out the same. It picks a choice by the messages' digest, and
    answers the seed scaffold's LOG and RECALL prompts with memory tool calls."""
    if request.get("max_tokens") == 1:
        return "ok"  # the preflight's probe
    digest = int(hashlib.sha256(json.dumps(request["messages"], sort_keys=True).encode()).hexdigest(), 16)
    choices = requested_choices(request)
    if choices:
        return choices[digest % len(choices)]
    asked = [m for m in request["messages"] if m["role"] == "user"][-1]["content"]
    if asked.startswith("LOG"):
        name, arguments = "append", {"path": f"notes{digest % 2}.md", "text": f"saw {digest % 97}\n"}
    elif asked.startswith("RECALL"):
        name, arguments = "search", {"pattern": str(digest % 10)}
    else:
        return "ok"
    return {"content": None, "tool_calls": [{"id": f"call-{digest % 10**8}", "type": "function",
                                             "function": {"name": name, "arguments": json.dumps(arguments)}}]}  # fmt: skip


def parsed_body(body: bytes) -> Any:
    """A request body: orjson reads a long prompt in a fraction of the json module's time (the
    load benchmark's server shares the harness's cores); what orjson refuses (NaN), json reads."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def requested_choices(request: dict[str, Any]) -> list[str]:
    """The options of a vLLM-style choice constraint in a request, if any."""
    structured = request.get("structured_outputs") or {}
    return list(structured.get("choice") or [])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ScriptedModelServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802
        if not self._authorized():
            return
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [
                {"id": self.server.model_name, "object": "model", "owned_by": self.server.owned_by}]})  # fmt: skip
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def _authorized(self) -> bool:
        if self.server.api_key is None:
            return True
        if self.headers.get("Authorization") == f"Bearer {self.server.api_key}":
            return True
        self._send(401, {"error": {"message": "invalid API key", "code": 401}})
        return False

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        request = parsed_body(self.rfile.read(length) or b"{}")
        if not self._authorized():
            return
        if self.server.keep_requests:
            self.server.requests.append(request)
        failure = self.server.next_failure()
        if failure:
            self._send(failure, {"error": {"message": "scripted failure", "code": failure}})
            return
        if self.path.rstrip("/").endswith("/load_lora_adapter"):  # vLLM's runtime adapter loading
            self.server.loaded_adapters.append(request)
            self._send(200, {"status": "ok"})
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        if self.server.drop_request():  # a broken server: the connection closes, no answer
            self.close_connection = True
            return
        if self.server.refuse_tools and request.get("tools") and request.get("tool_choice", "auto") != "none":
            self._send(400, {"error": {"message": '"auto" tool choice requires --enable-auto-tool-choice and '
                                                  '--tool-call-parser to be set', "code": 400}})  # vLLM's words
            return
        if self.server.empty_answers:  # a broken proxy or server: 200, but no completion in it
            self._send(200, {"id": "empty", "object": "chat.completion", "choices": []})
            return
        if self.server.latency_s:
            time.sleep(self.server.latency_s)
        answer = self.server.responder(request)
        if not isinstance(answer, ScriptedAnswer):
            answer = ScriptedAnswer(dict(answer) if isinstance(answer, dict) else {"content": answer})
        if answer.status != 200:
            self._send(answer.status, {"error": {"message": answer.error, "code": answer.status}})
            return
        self._send(200, completion_body(request, answer, self.server.model_name, f"scripted-{len(self.server.requests)}"))


def completion_body(request: dict[str, Any], answer: ScriptedAnswer, model_name: str, answer_id: str) -> dict[str, Any]:
    """The chat completion an OpenAI-compatible server sends for `answer` (status 200)."""
    message = {"role": "assistant", **answer.message}
    text = str(message.get("content") or "")
    usage = answer.usage or {"prompt_tokens": sum(len(str(m.get("content", "")).split()) for m in request.get("messages", [])),
                             "completion_tokens": len(text.split())}  # fmt: skip
    finish = answer.finish_reason or ("tool_calls" if message.get("tool_calls") else "stop")
    return {
        "id": answer_id, "object": "chat.completion",
        "created": int(time.time()), "model": answer.model or request.get("model", model_name),
        "choices": [{"index": 0, "finish_reason": finish, "message": message}],
        "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
    }  # fmt: skip


class ScriptedModelServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many workers may connect at once (load tests)

    def __init__(
        self,
        responder: Responder,
        model_name: str = "scripted",
        owned_by: str = "scripted",
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        keep_requests: bool = True,
    ) -> None:
        super().__init__((host, port), _Handler)
        self.responder = responder
        self.api_key = api_key  # when set, requests without this bearer key get 401, as a hosted API
        self.model_name = model_name
        self.owned_by = owned_by
        self.requests: list[dict[str, Any]] = []
        self.keep_requests = keep_requests  # False for load tests: thousands of requests
        self.failures: list[int] = []  # HTTP statuses to answer with, one per request, first
        self.latency_s = 0.0  # each chat answer takes this long
        self.answer_chats: int | None = None  # after this many chat answers, drop every request
        self.refuse_tools = False  # as vLLM started without tool calling: 400 on requests with tools
        self.empty_answers = False  # answer every chat with HTTP 200 and no choices
        self._chats_answered = 0
        self.loaded_adapters: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer (a killed worker) is not the server's failure: quiet."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    def drop_request(self) -> bool:
        with self._lock:
            if self.answer_chats is not None and self._chats_answered >= self.answer_chats:
                return True
            self._chats_answered += 1
            return False

    def next_failure(self) -> int | None:
        with self._lock:
            return self.failures.pop(0) if self.failures else None

    def start(self) -> str:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> ScriptedModelServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
