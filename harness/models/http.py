"""JSON over HTTP to a model server: kept-alive connections, the `openai` client's retry policy.

Why not the `openai` client itself: a chat call through it cost 2.3 ms of CPU (its typed
request building, httpx's send, the pydantic response), the bulk of the harness's CPU per
step; the same request through `http.client` on a kept-alive connection costs 0.34 ms
(docs/benchmarks.md, profile). What a client must do right is kept as `openai` does it:
- retried: connection errors, timeouts, HTTP 408, 409, 429 and 5xx, unless the server says
  `x-should-retry: false` (and retried when it says `true`);
- waited: the server's `retry-after-ms` / `retry-after` when it asks for at most 60 s, else
  0.5 s doubling up to 8 s, less up to a quarter at random;
- every HTTP attempt is counted (`requests_sent`), so a call's retries are recorded.
A connection the server closed while idle (keep-alive ended) is reopened once without counting
an attempt: nothing reached the server. Hosts are reached directly (no HTTP proxy), over TCP,
TLS (certifi's CA bundle where installed) or a Unix socket (the sandbox's relay).
"""

from __future__ import annotations

import email.utils
import http.client
import json
import math
import random
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

INITIAL_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 8.0
MAX_SERVER_DELAY_S = 60.0  # a longer retry-after is not waited for: backoff instead
RETRIED_STATUSES = frozenset({408, 409, 429})
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, http.client.CannotSendRequest)


def tls_context() -> ssl.SSLContext:
    """Certificate checks for hosted servers: certifi's CA bundle (a slim Debian image has no
    system CA store; certifi comes with httpx), else the system's."""
    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout_s: float) -> None:
        super().__init__("localhost", timeout=timeout_s)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._socket_path)
        self.sock = sock


def open_connection(url: str, timeout_s: float, unix_socket: str | None = None) -> http.client.HTTPConnection:
    """A connected HTTP(S) connection to `url`'s host (or to `unix_socket`), TCP_NODELAY set:
    requests go out in pieces (headers, body), and Nagle's algorithm with delayed ACKs would
    add ~40 ms to each."""
    if unix_socket:
        connection: http.client.HTTPConnection = _UnixConnection(unix_socket, timeout_s)
        connection.connect()
        return connection
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"a model server needs an http(s) URL, got {url!r}")
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=timeout_s,
                                                 context=tls_context())  # fmt: skip
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout_s)
    connection.connect()
    assert connection.sock is not None
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


class HttpFailure(Exception):
    """A request that failed after its retries; `kind` is "status", "timeout" or "connection"."""

    def __init__(self, kind: str, detail: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(detail)
        self.kind, self.status, self.body = kind, status, body


@dataclass
class _Answer:
    status: int
    body: bytes
    headers: http.client.HTTPMessage


def _server_delay_s(headers: http.client.HTTPMessage) -> float | None:
    """What the server asked to wait (retry-after-ms, retry-after in seconds or as a date)."""
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return float(value)
        except ValueError:
            moment = email.utils.parsedate_to_datetime(value)
            return moment.timestamp() - time.time()
    except (TypeError, ValueError, OverflowError):
        return None


def retry_delay_s(retries_so_far: int, headers: http.client.HTTPMessage | None) -> float:
    asked = _server_delay_s(headers) if headers is not None else None
    if asked is not None and 0 < asked <= MAX_SERVER_DELAY_S:
        return asked
    return min(INITIAL_RETRY_DELAY_S * 2.0**retries_so_far, MAX_RETRY_DELAY_S) * (1 - 0.25 * random.random())


def _should_retry(answer: _Answer) -> bool:
    said = (answer.headers.get("x-should-retry") or "").lower()
    if said in ("true", "false"):
        return said == "true"
    return answer.status in RETRIED_STATUSES or answer.status >= 500


def error_detail(body: Any, raw: bytes) -> str:
    """The server's own words for a failed request (OpenAI's error format, else the text)."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if body.get("message"):
            return str(body["message"])
    return raw[:500].decode(errors="replace")


class JsonEndpoint:
    """Requests to one server, JSON in and out, from any thread (each takes its own
    connection; idle ones are kept for the next request)."""

    def __init__(self, base_url: str, *, api_key: str | None, timeout_s: float, max_retries: int,
                 unix_socket: str | None = None) -> None:  # fmt: skip
        self.base_url = base_url
        self.timeout_s, self.max_retries, self.unix_socket = timeout_s, max_retries, unix_socket
        self.path_prefix = urlsplit(base_url).path.rstrip("/")
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.requests_sent = 0  # every HTTP attempt: those beyond a call's first are its retries
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The answer's JSON, after retries; HttpFailure when there is none to give."""
        payload = _encoded(body) if body is not None else None
        retries = 0
        while True:
            try:
                answer = self._send(method, self.path_prefix + path, payload)
            except TimeoutError as error:
                failure = HttpFailure("timeout", f"Request timed out: {error}")
                headers = None
            except (OSError, http.client.HTTPException) as error:
                failure = HttpFailure("connection", f"Connection error: {type(error).__name__}: {error}")
                headers = None
            else:
                parsed = _parse(answer.body)
                if 200 <= answer.status < 300:
                    return parsed
                failure = HttpFailure("status", error_detail(parsed, answer.body), answer.status, parsed)
                headers = answer.headers
                if not _should_retry(answer):
                    raise failure
            if retries >= self.max_retries:
                raise failure
            time.sleep(retry_delay_s(retries, headers))
            retries += 1

    def _send(self, method: str, path: str, payload: bytes | None) -> _Answer:
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        reused = connection is not None
        self.requests_sent += 1
        if connection is None:
            connection = open_connection(self.base_url, self.timeout_s, self.unix_socket)
        try:
            answer = self._exchange(connection, method, path, payload)
        except _STALE:
            connection.close()
            if not reused:
                raise
            # the server closed this kept-alive connection while it was idle: nothing was
            # answered, so this is the same attempt on a new connection, not a retry
            connection = open_connection(self.base_url, self.timeout_s, self.unix_socket)
            try:
                answer = self._exchange(connection, method, path, payload)
            except BaseException:
                connection.close()
                raise
        except BaseException:
            connection.close()
            raise
        if answer.headers.get("connection", "").lower() == "close" or connection.sock is None:
            connection.close()
        else:
            with self._lock:
                self._idle.append(connection)
        return answer

    def _exchange(self, connection: http.client.HTTPConnection, method: str, path: str, payload: bytes | None) -> _Answer:
        try:
            connection.request(method, path, body=payload, headers=self.headers)
        except (BrokenPipeError, ConnectionResetError) as failed:
            # A server that refuses a request before reading all of it (413: too large) answers,
            # then stops reading: the answer is waiting even though the body could not be sent.
            try:
                response = connection.getresponse()
                return _Answer(response.status, response.read(), response.headers)
            except (OSError, http.client.HTTPException):
                raise failed from None
        response = connection.getresponse()
        return _Answer(response.status, response.read(), response.headers)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def _encoded(body: dict[str, Any]) -> bytes:
    """The request's JSON: orjson's (a tenth of the json module's CPU on a long prompt), the json
    module's where orjson would not say the same (it writes NaN as null; it refuses other keys)."""
    if any(isinstance(value, float) and not math.isfinite(value) for value in body.values()):
        return json.dumps(body).encode()
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body).encode()


def _parse(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else None
    except ValueError:
        try:  # what orjson refuses and the json module reads (NaN, Infinity)
            return json.loads(raw)
        except ValueError:
            return None
