"""The simulated server's HTTP side: one asyncio loop, one task per connection.

The load benchmark's server shares the harness's two cores, so what it spends is taken from
the harness being measured. As a `ThreadingHTTPServer` (a thread per connection, http.server's
header parsing) it spent about 1 ms of CPU a call at N = 64, a fifth of all the CPU a NetHack
run used. Here a request is read with one search for the header's end and a body of
Content-Length bytes, a call's latency is a timer on the loop instead of a sleeping thread,
and an answer goes out in one write. It speaks what the harness's client sends: HTTP/1.1 with
keep-alive, `GET …/models`, `POST …/chat/completions`; the completion's body is the scripted
server's (models.scripted.completion_body).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from harness.models.scripted import ScriptedAnswer, completion_body, parsed_body

# (request, the connection's own state) -> the answer, once the call's latency has passed
ChatHandler = Callable[[dict[str, Any], dict[str, Any]], Awaitable[ScriptedAnswer]]
REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}
MAX_HEADER_BYTES = 1 << 16


def _parse_head(head: bytes) -> tuple[bytes, bytes, int, bool]:
    """(method, path, content length, keep the connection) of an HTTP/1.1 request head."""
    lines = head.split(b"\r\n")
    method, path, _ = lines[0].split(b" ", 2)
    length, keep = 0, True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"connection" and value.strip().lower() == b"close":
            keep = False
    return method, path, length, keep


def _response(status: int, body: dict[str, Any], keep: bool) -> bytes:
    payload = orjson.dumps(body)
    head = (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
            % (status, REASONS.get(status, b"Error"), len(payload), b"" if keep else b"Connection: close\r\n"))  # fmt: skip
    return head + payload


class AsyncChatServer:
    """`start()` serves on 127.0.0.1 from a thread of its own and returns the base URL."""

    def __init__(self, chat: ChatHandler, model_name: str = "simulated", owned_by: str = "vllm") -> None:
        self.chat, self.model_name, self.owned_by = chat, model_name, owned_by
        self.answered = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> str:
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0, limit=MAX_HEADER_BYTES, backlog=256))
        port = self._server.sockets[0].getsockname()[1]
        self._thread.start()
        return f"http://127.0.0.1:{port}/v1"

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            connections = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in connections:  # kept-alive connections wait for a next request: end them
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # see load_server
        state: dict[str, Any] = {}  # the connection's own (a worker keeps one)
        try:
            keep = True
            while keep:
                method, path, length, keep = _parse_head(await reader.readuntil(b"\r\n\r\n"))
                body = await reader.readexactly(length) if length else b""
                status, answer = await self._route(method, path.rstrip(b"/"), body, state)
                writer.write(_response(status, answer, keep))
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError,
                asyncio.CancelledError):  # cancelled: the server stops (ended quietly, as asyncio 3.11 wants)
            pass  # or the client went away (a killed worker), or sent what this server does not read
        finally:
            writer.close()

    async def _route(self, method: bytes, path: bytes, body: bytes, state: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method == b"GET" and path.endswith(b"/models"):
            return 200, {"object": "list", "data": [{"id": self.model_name, "object": "model", "owned_by": self.owned_by}]}
        if method != b"POST" or not path.endswith(b"/chat/completions"):
            return 404, {"error": {"message": f"no route {path.decode(errors='replace')}"}}
        request = parsed_body(body or b"{}")
        answer = await self.chat(request, state)
        self.answered += 1
        return 200, completion_body(request, answer, self.model_name, f"simulated-{self.answered}")
