"""A registry front that breaks on demand, for the operator's fault tests.

``FaultyFront`` listens on a host and port of its own (the pod network's bridge, so
populator pods reach it) and streams every request to a real docker-registry behind
it. A test turns faults on and off while an import runs:

- ``rate``: blob bodies are sent at this many bytes a second (an import that lasts long
  enough to be interrupted);
- ``corrupt``: one byte in the middle of every blob body is flipped;
- ``busy``: the next N blob and manifest requests get 429 or 503 with ``Retry-After``;
- ``answers``: a canned ``(status, headers, body)`` for a path (what the registry
  behind would refuse to store, such as an oversized manifest);
- ``stop()`` / ``start()``: the front goes away (listening socket closed, transfers in
  flight cut) and comes back on the same port, as a restarted registry does.

``seen`` counts the requests by kind, so a test can say what the pod did.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.registry import free_port

CHUNK = 64 * 1024
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def _forward(self) -> None:
        front = self.server.front
        front.connections.add(self.connection)
        path = self.path.split("?", 1)[0]
        kind = "other"
        if "/blobs/sha256:" in path:
            kind = "blob"
        elif "/manifests/" in path:
            kind = "manifest"
        front.seen[kind] += 1
        if path in front.answers:
            status, headers, body = front.answers[path]
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        if kind != "other" and front.take_busy():
            body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
            self.send_response(front.busy_status)
            self.send_header("Retry-After", str(front.retry_after))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        length = int(self.headers.get("Content-Length") or 0)
        body_in = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream = http.client.HTTPConnection(front.upstream, timeout=30)
        try:
            upstream.request(self.command, self.path, body=body_in, headers=headers)
            response = upstream.getresponse()
            self.send_response(response.status)
            size = response.getheader("Content-Length")
            for name, value in response.getheaders():
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            if size is None:  # no length to frame the body by: the connection's end does
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command == "HEAD":
                return
            middle = int(size) // 2 if size and kind == "blob" else -1
            sent = 0
            while chunk := response.read(CHUNK):
                if kind == "blob" and front.corrupt and sent <= middle < sent + len(chunk):
                    flipped = bytearray(chunk)
                    flipped[middle - sent] ^= 0xFF
                    chunk = bytes(flipped)
                self.wfile.write(chunk)
                sent += len(chunk)
                if kind == "blob" and front.rate:
                    time.sleep(len(chunk) / front.rate)
        finally:
            upstream.close()
            front.connections.discard(self.connection)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _forward


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, front: FaultyFront) -> None:
        self.front = front
        super().__init__((front.host, front.port), _Handler)


class FaultyFront:
    """A streaming front for the registry at ``upstream`` (``host:port``, plain HTTP)."""

    def __init__(self, upstream: str, host: str) -> None:
        self.upstream = upstream
        self.host = host
        self.port = free_port(host)
        self.rate = 0.0
        self.corrupt = False
        self.busy = 0
        self.busy_status = 429
        self.retry_after = 2
        self.answers: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.seen: Counter[str] = Counter()
        self.connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server: _Server | None = None

    @property
    def url(self) -> str:
        """``host:port``, the registry part of image references."""
        return f"{self.host}:{self.port}"

    def take_busy(self) -> bool:
        with self._lock:
            if self.busy <= 0:
                return False
            self.busy -= 1
            return True

    def start(self) -> None:
        self._server = _Server(self)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Go away: no new connections, and the transfers in flight are cut."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        for conn in list(self.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server = None

    def __enter__(self) -> FaultyFront:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
