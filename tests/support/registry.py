"""Debian's docker-registry (distribution 2.8) on loopback, for the registry test tier.

``start_registry(workdir, tls=..., auth=...)`` returns a running :class:`Registry`:
plain HTTP or TLS with a private CA, no auth, htpasswd basic auth, or bearer tokens
from :class:`~tests.support.tokenserver.TokenServer`. The process runs in its own
session and is killed on ``stop()``, on context exit and at interpreter exit.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from vmdiskimage.auth import Credentials
from vmdiskimage.registry import RegistryClient, RegistryOptions

from .pki import CertificateAuthority, self_signed
from .tokenserver import TokenServer

REGISTRY_BINARY = "docker-registry"
USERNAME = "tester"
PASSWORD = "s3cret-pa55"
_LIVE: set[Registry] = set()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class Registry:
    """One docker-registry process; see the module docstring."""

    def __init__(
        self, workdir: Path, host: str, tls: bool, auth: str | None, port: int | None = None
    ) -> None:
        if auth not in (None, "basic", "token"):
            raise ValueError(f"auth must be None, 'basic' or 'token', not {auth!r}")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.tls = tls
        self.auth = auth
        self.port = port or free_port(host)
        self.storage = self.workdir / "storage"
        self.storage.mkdir(exist_ok=True)
        self.log_path = self.workdir / "registry.log"
        self.username = USERNAME if auth else None
        self.password = PASSWORD if auth else None
        self.ca_file: Path | None = None
        self.token_server: TokenServer | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._log = None
        self.config_path = self._write_config()

    @property
    def url(self) -> str:
        """``host:port``, the registry part of image references."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    host_port = url

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.url}"

    def _write_config(self) -> Path:
        config: dict = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": f"{self.url}", "secret": "vmdiskimage-tests"},
        }
        if self.tls:
            ca = CertificateAuthority.create(self.workdir / "pki")
            cert, key = ca.issue("registry", [self.host, "localhost"])
            config["http"]["tls"] = {"certificate": str(cert), "key": str(key)}
            self.ca_file = ca.cert
        if self.auth == "basic":
            htpasswd = self.workdir / "htpasswd"
            out = subprocess.run(
                ["htpasswd", "-Bbn", USERNAME, PASSWORD], check=True, capture_output=True
            ).stdout
            htpasswd.write_bytes(out)
            config["auth"] = {"htpasswd": {"realm": "vmdiskimage-tests", "path": str(htpasswd)}}
        elif self.auth == "token":
            cert, key = self_signed(self.workdir / "token", "token-signer")
            self.token_server = TokenServer(
                cert=cert,
                key=key,
                issuer="vmdiskimage-test-issuer",
                service="vmdiskimage-test-registry",
                username=USERNAME,
                password=PASSWORD,
                host=self.host,
            )
            config["auth"] = {
                "token": {
                    "realm": self.token_server.realm,
                    "service": "vmdiskimage-test-registry",
                    "issuer": "vmdiskimage-test-issuer",
                    "rootcertbundle": str(cert),
                }
            }
        path = self.workdir / "config.yml"
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        return path

    def start(self) -> Registry:
        """Start (or restart, on the same port and storage) and wait until it answers."""
        if self.process and self.process.poll() is None:
            return self
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(self.config_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _LIVE.add(self)
        deadline = time.monotonic() + 20
        while True:
            try:
                resp = requests.get(
                    f"{self.base_url}/v2/", verify=str(self.ca_file) if self.ca_file else True,
                    timeout=2,
                )  # fmt: skip
                if resp.status_code in (200, 401):
                    return self
            except requests.exceptions.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.log_path.read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"docker-registry did not start on {self.url}:\n{log}")
            time.sleep(0.05)

    def _signal(self, sig: int) -> None:
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._log:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL the registry (connections break mid-transfer); storage is kept."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """Stop the registry and its token server."""
        self._signal(signal.SIGTERM)
        _LIVE.discard(self)

    def close(self) -> None:
        self.stop()
        if self.token_server:
            self.token_server.stop()
            self.token_server = None

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __hash__(self) -> int:
        return id(self)

    # -- helpers for tests ---------------------------------------------------------

    def dockerconfigjson(self, username: str | None = None, password: str | None = None) -> dict:
        user = username or self.username or "anonymous"
        secret = password if password is not None else (self.password or "")
        auth = base64.b64encode(f"{user}:{secret}".encode()).decode()
        return {"auths": {self.url: {"auth": auth, "username": user, "password": secret}}}

    def dockerconfigjson_path(
        self, username: str | None = None, password: str | None = None, name: str = "config.json"
    ) -> Path:
        """Write a dockerconfigjson file with this registry's (or the given) credentials."""
        path = self.workdir / "auth" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(self.dockerconfigjson(username, password)))
        return path

    def client(self, **kw: Any) -> RegistryClient:
        """A vmdiskimage RegistryClient for this registry, with its credentials."""
        creds = Credentials(self.username, self.password) if self.username else None
        return RegistryClient(
            self.url, self.options(), **{"credentials": creds, "backoff": 0.1, **kw}
        )

    def options(self) -> RegistryOptions:
        """How ``RegistryClient`` / ``populate`` / ``push`` reach this registry (no credentials)."""
        return RegistryOptions(plain_http=not self.tls, ca_file=self.ca_file)

    def skopeo_dest_args(self) -> list[str]:
        args = []
        if self.tls:
            certs = self.workdir / "skopeo-certs"
            certs.mkdir(exist_ok=True)
            (certs / "ca.crt").write_bytes(Path(self.ca_file).read_bytes())  # type: ignore[arg-type]
            args += ["--dest-cert-dir", str(certs)]
        else:
            args += ["--dest-tls-verify=false"]
        if self.username:
            args += ["--dest-creds", f"{self.username}:{self.password}"]
        return args

    def blob_data_path(self, digest: str) -> Path:
        """Where the registry keeps a blob's bytes (to corrupt it on purpose)."""
        algo, hexdigest = digest.split(":", 1)
        return self.storage / "docker/registry/v2/blobs" / algo / hexdigest[:2] / hexdigest / "data"


def start_registry(
    workdir: Path, host: str = "127.0.0.1", tls: bool = False, auth: str | None = None
) -> Registry:
    """Start docker-registry on a free port of ``host``; use as a context manager."""
    registry = Registry(Path(workdir), host, tls, auth)
    try:
        return registry.start()
    except BaseException:
        registry.close()
        raise


@atexit.register
def _kill_leftovers() -> None:
    for registry in list(_LIVE):
        registry.close()
