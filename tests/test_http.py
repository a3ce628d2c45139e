"""The model client's HTTP path (models.http): kept-alive connections, the retry policy, the
server's retry headers, and a connection the server closed while idle."""

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from harness.models.http import HttpFailure, JsonEndpoint, retry_delay_s


class _Server:
    """Answers each POST with the next (status, headers, body) planned, then 200 {"ok": true}."""

    def __init__(self) -> None:
        self.plan: list[tuple[int, dict[str, str], Any]] = []
        self.requests: list[float] = []
        self.connections: set[tuple[str, int]] = set()
        self.close_after_answer = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                server.requests.append(time.monotonic())
                server.connections.add(self.client_address)
                status, headers, body = server.plan.pop(0) if server.plan else (200, {}, {"ok": True})
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                if server.close_after_answer:
                    self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture()
def server() -> Iterator[_Server]:
    running = _Server()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()


def _endpoint(server: _Server, retries: int = 3) -> JsonEndpoint:
    return JsonEndpoint(server.url, api_key=None, timeout_s=10, max_retries=retries)


def test_requests_reuse_one_kept_alive_connection(server: _Server) -> None:
    endpoint = _endpoint(server)
    for _ in range(5):
        assert endpoint.request("POST", "/chat/completions", {"x": 1}) == {"ok": True}
    assert len(server.connections) == 1 and endpoint.requests_sent == 5


def test_a_connection_the_server_closed_is_reopened_without_counting_a_retry(server: _Server) -> None:
    server.close_after_answer = True
    endpoint = _endpoint(server, retries=0)
    for _ in range(3):
        assert endpoint.request("POST", "/chat/completions", {}) == {"ok": True}
    assert endpoint.requests_sent == 3 and len(server.requests) == 3


def test_the_servers_retry_after_is_waited_for(server: _Server) -> None:
    server.plan = [(429, {"retry-after-ms": "300"}, {"error": {"message": "slow down"}})]
    endpoint = _endpoint(server)
    assert endpoint.request("POST", "/chat/completions", {}) == {"ok": True}
    assert endpoint.requests_sent == 2 and server.requests[1] - server.requests[0] >= 0.29


def test_x_should_retry_overrides_the_status(server: _Server) -> None:
    server.plan = [(503, {"x-should-retry": "false"}, {"error": {"message": "gone for good"}})]
    with pytest.raises(HttpFailure, match="gone for good") as failed:
        _endpoint(server).request("POST", "/chat/completions", {})
    assert failed.value.status == 503 and len(server.requests) == 1
    server.plan = [(400, {"x-should-retry": "true", "retry-after": "0.1"}, {"error": "again"})]
    assert _endpoint(server).request("POST", "/chat/completions", {}) == {"ok": True}


def test_backoff_doubles_to_its_cap_with_jitter() -> None:
    delays = [retry_delay_s(n, None) for n in range(8)]
    for n, delay in enumerate(delays):
        full = min(0.5 * 2**n, 8.0)
        assert 0.75 * full <= delay <= full


def test_a_body_orjson_would_write_otherwise_goes_out_as_the_json_module_writes_it() -> None:
    from harness.models.http import _encoded

    assert b"NaN" in _encoded({"temperature": float("nan"), "messages": []})  # orjson would write null
    assert _encoded({"messages": [{"role": "user", "content": "hi"}]}) == b'{"messages":[{"role":"user","content":"hi"}]}'
    assert _encoded({"logit_bias": {1: 2}}) == b'{"logit_bias": {"1": 2}}'  # orjson refuses int keys


def test_an_answer_sent_before_the_server_stopped_reading_is_read(tmp_path: Any) -> None:
    """The relay refuses an oversized request with 413 before reading its body, then stops
    reading: the client's send fails, and the 413 is still the answer (the scaffold's fault)."""
    import socket

    path = str(tmp_path / "relay.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def refuse() -> None:
        connection, _ = listener.accept()
        with connection:
            received = b""
            while b"\r\n\r\n" not in received:
                received += connection.recv(4096)
            body = b'{"error": {"message": "relay: too large"}}'
            connection.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
                               b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            connection.shutdown(socket.SHUT_WR)  # and reads no more: the client's send fails

    thread = threading.Thread(target=refuse, daemon=True)
    thread.start()
    endpoint = JsonEndpoint("http://relay/v1", api_key=None, timeout_s=10, max_retries=0, unix_socket=path)
    with pytest.raises(HttpFailure, match="too large") as refused:
        endpoint.request("POST", "/chat/completions", {"messages": [{"role": "user", "content": "x" * 8_000_000}]})
    assert refused.value.status == 413
    thread.join(timeout=10)
    listener.close()
