"""A forward HTTP proxy on loopback that records what went through it.

Enough of a proxy for the registry client's plain-HTTP requests (absolute-form request
lines, streamed bodies, Range); it exists to prove that HTTP_PROXY/NO_PROXY are honoured.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ForwardProxy

    def _forward(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        self.server.seen.append(f"{self.command} {url.netloc}{url.path}")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection(url.netloc, timeout=30)
        target = url.path + (f"?{url.query}" if url.query else "")
        upstream.request(self.command, target, body=body, headers=headers)
        response = upstream.getresponse()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.end_headers()
        while chunk := response.read(1 << 20):
            self.wfile.write(chunk)
        upstream.close()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _forward

    def log_message(self, *args: object) -> None:
        pass


class ForwardProxy(ThreadingHTTPServer):
    """``with ForwardProxy() as proxy:`` serves on ``proxy.url``; ``proxy.seen`` lists requests."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> ForwardProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
