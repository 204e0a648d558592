"""A forward HTTP proxy on loopback that records what went through it.

Enough of a proxy for the registry client's plain-HTTP requests (absolute-form request
lines, streamed bodies, Range); it exists to prove that HTTP_PROXY/NO_PROXY are honoured,
and to be the proxy that misbehaves: one that compresses blob answers in transit
whatever the client accepts (``encoding``), and one whose blob answers break off
(``cuts``).
"""

from __future__ import annotations

import http.client
import socket
import threading
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import zstandard

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}


def encode(data: bytes, coding: str) -> bytes:
    """``data`` in the HTTP content coding ``coding``; a coding this proxy cannot write
    is only a label (the client must refuse it before reading a byte)."""
    if coding == "gzip":
        compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        return compressor.compress(data) + compressor.flush()
    if coding == "deflate":  # the zlib format, as RFC 9110 defines it
        return zlib.compress(data)
    if coding == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ForwardProxy

    def _forward(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        self.server.seen.append(f"{self.command} {url.netloc}{url.path}")
        self.server.requests.append((self.command, url.path, dict(self.headers.items())))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection(url.netloc, timeout=30)
        target = url.path + (f"?{url.query}" if url.query else "")
        upstream.request(self.command, target, body=body, headers=headers)
        response = upstream.getresponse()
        if self.command == "GET" and "/blobs/" in url.path and response.status in (200, 206):
            self._send_blob(response)
            upstream.close()
            return
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.end_headers()
        while chunk := response.read(1 << 20):
            self.wfile.write(chunk)
        upstream.close()

    def _send_blob(self, response: http.client.HTTPResponse) -> None:
        data = response.read()
        coding = self.server.encoding
        if coding:
            data = encode(data, coding)
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP | {"content-length", "content-encoding"}:
                self.send_header(name, value)
        if coding:
            self.send_header("Content-Encoding", coding)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        cut = self.server.take_cut()
        if cut is None:
            self.wfile.write(data)
            return
        self.wfile.write(data[:cut])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _forward

    def log_message(self, *args: object) -> None:
        pass


class ForwardProxy(ThreadingHTTPServer):
    """``with ForwardProxy() as proxy:`` serves on ``proxy.url``.

    ``seen`` lists requests as ``"METHOD host/path"``, ``requests`` as ``(method, path,
    headers)``. ``encoding`` (``gzip``, ``deflate``, ``zstd``, or any other name, sent
    as a label only) is the content coding blob answers get, 200 and 206 alike, as a
    proxy that ignores ``Accept-Encoding`` sends them. Each of ``cuts`` breaks the
    connection of the next blob answer after that many bytes of its body (None: whole).
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[str] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.encoding: str | None = None
        self.cuts: list[int | None] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def take_cut(self) -> int | None:
        with self._lock:
            return self.cuts.pop(0) if self.cuts else None

    def blob_requests(self) -> list[dict[str, str]]:
        """The headers of every blob GET, in order."""
        return [h for method, path, h in self.requests if method == "GET" and "/blobs/" in path]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> ForwardProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
