"""Object storage on loopback that a registry redirects blob GETs to, as S3 and GCS are.

Registries on object storage (ECR, GCR, Docker Hub, Quay, distribution with an S3
driver) answer a blob GET with a redirect to a pre-signed URL: the query string carries
the credential and signature (``X-Amz-Credential``, ``X-Amz-Signature``), so it must
never be printed. :class:`ObjectStore` serves HTTPS with a certificate of its own CA
(a stand-in for the public CAs every system trusts), checks the signature in the query,
honours ``Range``, and answers an S3-style XML error, quoting the signed request as S3
does, when told to fail.
"""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .pki import CertificateAuthority

#: The secret parts of every signed URL the store hands out; no message may contain them.
SIGNATURE = "5d3c0ffee5ecret0f7hesigned0url5ignature"
CREDENTIAL = "AKIAVMDISKIMAGETEST1"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ObjectStore

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        store = self.server
        url = urlsplit(self.path)
        store.seen.append((self.command, url.path, dict(self.headers.items())))
        if store.failure is not None:
            status, code = store.failure
            body = (
                f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>denied</Message>"
                f"<CanonicalQueryString>{url.query}</CanonicalQueryString>"
                f"<SignatureProvided>{SIGNATURE}</SignatureProvided></Error>"
            ).encode()
            self._send(status, body, {"Content-Type": "application/xml"})
            return
        if parse_qs(url.query).get("X-Amz-Signature") != [SIGNATURE]:
            self._send(403, b"<Error><Code>AccessDenied</Code></Error>")
            return
        data = store.objects.get(url.path.removeprefix("/bucket/"))
        if data is None:
            self._send(404, b"<Error><Code>NoSuchKey</Code></Error>")
            return
        start = 0
        if (wanted := self.headers.get("Range", "")).startswith("bytes="):
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            self._send(206, data[start:], headers)
            return
        self._send(200, data, {"Content-Type": "application/octet-stream"})

    do_HEAD = do_GET


class ObjectStore(ThreadingHTTPServer):
    """HTTPS object storage on ``127.0.0.1``; ``ca`` is the CA its certificate chains to.

    ``objects`` maps keys to bytes, ``seen`` records ``(method, path, headers)``, and
    ``failure`` (``(status, S3 error code)``) makes every GET answer that error.
    Use as a context manager.
    """

    daemon_threads = True

    def __init__(self, workdir: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.ca = CertificateAuthority.create(workdir / "public-ca", "vmdiskimage public test CA")
        cert, key = self.ca.issue("storage", ["127.0.0.1", "localhost"])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.objects: dict[str, bytes] = {}
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.failure: tuple[int, str] | None = None
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def signed_url(self, key: str) -> str:
        """A pre-signed URL for ``key``, shaped like S3's (SigV4 query parameters)."""
        return (
            f"https://127.0.0.1:{self.server_address[1]}/bucket/{key}"
            "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Credential={CREDENTIAL}%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
            "&X-Amz-Date=20260101T000000Z&X-Amz-Expires=1200&X-Amz-SignedHeaders=host"
            f"&X-Amz-Signature={SIGNATURE}"
        )

    def __enter__(self) -> ObjectStore:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
