"""A bearer-token server for docker-registry's ``auth.token`` mode (stdlib only).

The registry (distribution 2.8) accepts RS256 JWTs whose ``x5c`` header carries a
certificate that chains to ``auth.token.rootcertbundle``; here the signer's
self-signed certificate is the whole bundle. Tokens are signed with ``openssl dgst``.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _cert_der_b64(cert: Path) -> str:
    der = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-outform", "DER"], check=True, capture_output=True
    ).stdout
    return base64.b64encode(der).decode()


class TokenServer:
    """Issues tokens at ``http://host:port/token`` to one user (any scope it asks for)."""

    def __init__(
        self,
        *,
        cert: Path,
        key: Path,
        issuer: str,
        service: str,
        username: str,
        password: str,
        host: str = "127.0.0.1",
    ) -> None:
        self.key = key
        self.issuer = issuer
        self.service = service
        self.username = username
        self.password = password
        self.x5c = _cert_der_b64(cert)
        self.issued = 0
        self.refused = 0
        self.authorizations: list[str] = []  # Authorization headers received
        #: Issue tokens that grant nothing to clients without credentials (Docker Hub).
        self.anonymous = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                if url.path != "/token":
                    self.send_error(404)
                    return
                query = parse_qs(url.query)
                if "Authorization" in self.headers:
                    server.authorizations.append(self.headers["Authorization"])
                anonymous = "Authorization" not in self.headers and server.anonymous
                if anonymous:
                    # Docker Hub's way: a token for anyone, granting nothing private.
                    token = server.sign([], query.get("service", [""])[0])
                elif not server._authorized(self.headers.get("Authorization", "")):
                    server.refused += 1
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"errors":[{"code":"UNAUTHORIZED"}]}')
                    return
                else:
                    token = server.sign(query.get("scope", []), query.get("service", [""])[0])
                body = json.dumps({"token": token, "access_token": token, "expires_in": 300})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.realm = f"http://{host}:{self.port}/token"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def _authorized(self, header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(
            f"{user}:{password}".encode(), f"{self.username}:{self.password}".encode()
        )

    def sign(self, scopes: list[str], service: str) -> str:
        access = []
        for scope in scopes:
            for part in scope.split(" "):
                kind, _, rest = part.partition(":")
                name, _, actions = rest.rpartition(":")
                if kind and name:
                    access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {
            "iss": self.issuer,
            "sub": self.username,
            "aud": service or self.service,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        encoded = (_b64url(json.dumps(part).encode()) for part in (header, claims))
        signing_input = ".".join(encoded)
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            check=True,
            capture_output=True,
        ).stdout
        self.issued += 1
        return f"{signing_input}.{_b64url(signature)}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
