"""The relay: the agent sandbox's only way to its model, an HTTP proxy on Unix sockets.

    python -m harness.runtime.relay --control /control/relay.sock \
        --route 0=http://127.0.0.1:41234 [--route 1=https://api.example.com] [limits]

The agent container has no network. The relay runs in a container on the host's network; the
harness asks it, over a control socket only the host reaches, to open one socket file per
episode and model endpoint inside that episode's own folder, so an episode's container reaches
its own sockets and no other episode's. Each request is forwarded to its route's server:
- the API key, if the route has one, is added here on the way out (read from the relay's
  environment, HARNESS_RELAY_KEY_<route>): it never enters the agent's container, files or traces;
- requests and answers over the size limits, and servers slower than the timeout, are answered
  with an error (HTTP 413, 502, 504) in the OpenAI error format, which the scaffold's chat call
  raises and the trace records;
- a client that stops sending is dropped after the client timeout;
- only two endpoints pass: POST .../chat/completions and GET .../models (anything else, such
  as files, fine-tuning or adapter loading, is answered 403), and each socket's chat requests
  go out with the model the harness assigned to that socket: a scaffold cannot pick another.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from harness.models.http import open_connection

KEY_VARIABLE = "HARNESS_RELAY_KEY_{}"
MAX_REQUEST_BYTES = 8 * 1024 * 1024  # a long prompt is a few hundred kB
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
UPSTREAM_TIMEOUT_S = 600.0  # as the harness's own model timeout
CLIENT_TIMEOUT_S = 60.0  # to send a request once connected
LINGER_S = 2.0  # to let a refused client read its answer before the socket closes
_HOP_HEADERS = {"host", "connection", "keep-alive", "authorization", "content-length", "transfer-encoding",
                "proxy-connection", "upgrade", "te", "trailer"}  # fmt: skip


class Route:
    """Where one endpoint's requests go, and the key added to them."""

    def __init__(self, url: str, key: str | None) -> None:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"a route needs an http(s) URL, got {url!r}")
        self.url, self.https = url, parsed.scheme == "https"
        self.host, self.port = parsed.hostname, parsed.port or (443 if self.https else 80)
        self.key = key
        prefix = parsed.path.rstrip("/")  # as the harness's chat client builds its URLs
        self.prefix = prefix if prefix.endswith("/v1") else prefix + "/v1"

    @property
    def chat_path(self) -> str:
        return self.prefix + "/chat/completions"

    @property
    def models_path(self) -> str:
        return self.prefix + "/models"

    def connect(self, timeout_s: float) -> http.client.HTTPConnection:
        return open_connection(self.url, timeout_s)


class Limits:
    def __init__(self, max_request_bytes: int = MAX_REQUEST_BYTES, max_response_bytes: int = MAX_RESPONSE_BYTES,
                 upstream_timeout_s: float = UPSTREAM_TIMEOUT_S, client_timeout_s: float = CLIENT_TIMEOUT_S) -> None:  # fmt: skip
        self.max_request_bytes, self.max_response_bytes = max_request_bytes, max_response_bytes
        self.upstream_timeout_s, self.client_timeout_s = upstream_timeout_s, client_timeout_s


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    route: Route
    limits: Limits
    model: str | None  # the model every chat request of this socket names (None: as sent)


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the agent's client reuses its connection
    server: _UnixHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.limits.client_timeout_s)
        self.upstream: http.client.HTTPConnection | None = None

    def finish(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
        super().finish()

    def address_string(self) -> str:  # a Unix socket has no client address
        return "agent"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def _refuse(self, status: int, message: str) -> None:
        body = json.dumps({"error": {"message": f"relay: {message}", "type": "relay_error", "code": status}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:  # said, so that a keep-alive client does not send its next request here
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        if self.close_connection:
            self._linger()

    def _linger(self) -> None:
        """Close after the client has read the answer: closing a socket with an unread request
        body in it sends a reset, which can reach the client before the error it should read."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(LINGER_S)
            unread = 0
            while unread < self.server.limits.max_request_bytes and (chunk := self.connection.recv(65536)):
                unread += len(chunk)
        except OSError:
            pass  # the client left first: nothing is waiting for the answer

    def _refuse_endpoint(self) -> None:
        route = self.server.route
        self.close_connection = True
        self._refuse(403, f"{self.command} {self.path} is not an endpoint a scaffold may use; only "
                          f"POST {route.chat_path} and GET {route.models_path} are forwarded")  # fmt: skip

    def do_GET(self) -> None:  # noqa: N802
        if self.path != self.server.route.models_path:
            return self._refuse_endpoint()
        self._forward(b"")

    def do_POST(self) -> None:  # noqa: N802
        limits = self.server.limits
        if self.path != self.server.route.chat_path:
            return self._refuse_endpoint()
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            return self._refuse(411, "requests must state their Content-Length")
        length = int(self.headers.get("Content-Length") or 0)
        if length > limits.max_request_bytes:
            self.close_connection = True  # the body is not read
            return self._refuse(413, f"the request has {length} bytes, over the limit of {limits.max_request_bytes}")
        body = self.rfile.read(length)
        if self.server.model is not None:
            try:
                request = json.loads(body)
            except ValueError:
                request = None
            if not isinstance(request, dict):
                return self._refuse(400, "a chat request must be a JSON object")
            request["model"] = self.server.model  # the harness's choice, whatever was asked
            body = json.dumps(request).encode()
        self._forward(body)

    def do_PUT(self) -> None:  # noqa: N802
        self._refuse_endpoint()

    def do_DELETE(self) -> None:  # noqa: N802
        self._refuse_endpoint()

    def do_PATCH(self) -> None:  # noqa: N802
        self._refuse_endpoint()

    def _forward(self, body: bytes) -> None:
        route, limits = self.server.route, self.server.limits
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
        authorization = f"Bearer {route.key}" if route.key else self.headers.get("Authorization")
        if authorization:
            headers["Authorization"] = authorization
        headers["Content-Length"] = str(len(body))
        try:
            if self.upstream is None:
                self.upstream = route.connect(limits.upstream_timeout_s)
            self.upstream.request(self.command, self.path, body=body, headers=headers)
            answer = self.upstream.getresponse()
            data = answer.read(limits.max_response_bytes + 1)
        except TimeoutError:
            self._drop_upstream()
            return self._refuse(504, f"the model server did not answer within {limits.upstream_timeout_s:g} s")
        except (OSError, http.client.HTTPException) as error:
            self._drop_upstream()
            return self._refuse(502, f"the model server could not be reached: {type(error).__name__}: {error}")
        if len(data) > limits.max_response_bytes:
            self._drop_upstream()  # the rest of the answer is unread
            return self._refuse(502, f"the model server's answer is over the limit of {limits.max_response_bytes} bytes")
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.getheader("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _drop_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None


class Relay:
    """The routes and the sockets opened for them (several episodes share a route)."""

    def __init__(self, routes: dict[str, Route], limits: Limits) -> None:
        self.routes, self.limits = routes, limits
        self.servers: dict[str, _UnixHTTPServer] = {}
        self.lock = threading.Lock()

    def listen(self, path: str, route: str, model: str | None = None) -> None:
        """Open `path` (a socket file) for `route`'s server; its chat requests name `model`."""
        if route not in self.routes:
            raise ValueError(f"no route {route!r}")
        Path(path).unlink(missing_ok=True)
        server = _UnixHTTPServer(path, _Forward)  # bound and listening when this returns
        server.route, server.limits, server.model = self.routes[route], self.limits, model
        Path(path).chmod(0o777)  # any user id of an agent container may connect
        with self.lock:
            self.servers[path] = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self, path: str) -> None:
        with self.lock:
            server = self.servers.pop(path, None)
        if server is not None:
            server.shutdown()
            server.server_close()
        Path(path).unlink(missing_ok=True)

    def control(self, path: str) -> None:
        """Serve commands from the host, one JSON line each: {"listen": PATH, "route": R,
        "model": NAME} or {"close": PATH}; each is answered with {"ok": true} or {"ok": false, "error": ...}."""
        Path(path).unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path + ".new")
        listener.listen(16)
        os.replace(path + ".new", path)  # the file appears once connections are accepted
        while True:
            client, _ = listener.accept()
            threading.Thread(target=self._command, args=(client,), daemon=True).start()

    def _command(self, client: socket.socket) -> None:
        with client, client.makefile("rwb") as stream:
            for line in stream:
                try:
                    command = json.loads(line)
                    if "listen" in command:
                        model = command.get("model")
                        self.listen(str(command["listen"]), str(command["route"]), str(model) if model else None)
                    else:
                        self.close(str(command["close"]))
                    reply: dict[str, Any] = {"ok": True}
                except Exception as error:  # a bad command is answered, the relay goes on
                    reply = {"ok": False, "error": f"{type(error).__name__}: {error}"}
                stream.write(json.dumps(reply).encode() + b"\n")
                stream.flush()


class RelayControl:
    """The host's end of the control socket."""

    def __init__(self, path: Path, timeout_s: float = 30.0) -> None:
        self.path, self.timeout_s = path, timeout_s
        self.lock = threading.Lock()

    def _send(self, command: dict[str, str | None]) -> None:
        with self.lock, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(self.timeout_s)
            connection.connect(str(self.path))
            connection.sendall(json.dumps(command).encode() + b"\n")
            reply = json.loads(connection.makefile("rb").readline() or b'{"ok": false, "error": "no answer"}')
        if not reply.get("ok"):
            raise RuntimeError(f"the relay refused {command}: {reply.get('error')}")

    def listen(self, path: str, route: str, model: str | None = None) -> None:
        self._send({"listen": path, "route": route, "model": model})

    def close(self, path: str) -> None:
        self._send({"close": path})


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.runtime.relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--control", required=True, help="the control socket's path")
    parser.add_argument("--route", action="append", default=[], help="NAME=URL of a model server (repeatable)")
    parser.add_argument("--max-request-bytes", type=int, default=MAX_REQUEST_BYTES)
    parser.add_argument("--max-response-bytes", type=int, default=MAX_RESPONSE_BYTES)
    parser.add_argument("--upstream-timeout", type=float, default=UPSTREAM_TIMEOUT_S)
    parser.add_argument("--client-timeout", type=float, default=CLIENT_TIMEOUT_S)
    args = parser.parse_args(argv)
    routes = {}
    for spec in args.route:
        name, _, url = spec.partition("=")
        routes[name] = Route(url, os.environ.pop(KEY_VARIABLE.format(name), None) or None)
    relay = Relay(routes, Limits(args.max_request_bytes, args.max_response_bytes, args.upstream_timeout, args.client_timeout))
    print(f"relay: routes {', '.join(routes)}; control {args.control}", flush=True)
    relay.control(args.control)


if __name__ == "__main__":
    main(sys.argv[1:])
