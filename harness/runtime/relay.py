"""A relay from Unix sockets to TCP endpoints: the agent sandbox's only way to its model.

    python -m harness.runtime.relay /sockets/model-0.sock=127.0.0.1:41234 [...]

The agent container has no network at all; the relay (in a container on the host's network)
listens on socket files in a folder mounted into the agent containers and forwards each to
one fixed model endpoint, nothing else.
"""

from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        for end in (source, target):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _serve(path: str, host: str, target_port: int) -> None:
    Path(path).unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    Path(path).chmod(0o777)  # any user id of an agent container may connect
    listener.listen(64)
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection((host, target_port), timeout=10)
        except OSError:
            client.close()
            continue
        upstream.settimeout(None)
        # Requests arrive in pieces (headers, body): without this, Nagle's algorithm and
        # delayed ACKs add ~40 ms to every model call.
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def main(routes: list[str]) -> None:
    threads = []
    for route in routes:
        path, _, target = route.partition("=")
        host, _, target_port = target.rpartition(":")
        thread = threading.Thread(target=_serve, args=(path, host, int(target_port)), daemon=True)
        thread.start()
        threads.append(thread)
    print(f"relay: {' '.join(routes)}", flush=True)
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main(sys.argv[1:])
