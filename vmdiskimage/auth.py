# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""Registry credentials (dockerconfigjson files) and WWW-Authenticate challenges."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CredentialsError


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or registry token used as a password)."""

    username: str
    password: str = field(repr=False)


def _normalize_host(key: str) -> str:
    """``https://index.docker.io/v1/`` -> ``index.docker.io``; ``host:5000/`` -> ``host:5000``."""
    key = key.strip()
    key = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", key)
    host = key.split("/", 1)[0].lower()
    if host in ("index.docker.io", "registry-1.docker.io", "docker.io"):
        return "docker.io"
    return host


def _entry_credentials(host: str, entry: object) -> Credentials:
    if not isinstance(entry, dict):
        raise CredentialsError(f"credentials entry for {host!r} is not an object")
    username = entry.get("username")
    password = entry.get("password")
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(entry["auth"], validate=False).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise CredentialsError(
                f"the 'auth' field for {host!r} is not base64 user:pass"
            ) from exc
        username, sep, password = decoded.partition(":")
        if not sep:
            raise CredentialsError(
                f"the 'auth' field for {host!r} has no ':' between user and password"
            )
    if not username or password is None:
        raise CredentialsError(
            f"credentials for {host!r} have neither 'auth' nor username/password"
        )
    return Credentials(str(username), str(password))


def parse_docker_config(data: bytes | str) -> dict[str, Credentials]:
    """Parse a dockerconfigjson document (or the legacy ``.dockercfg`` form) into host -> creds."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise CredentialsError(f"the credentials file is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise CredentialsError("the credentials file must hold a JSON object")
    auths = doc.get("auths", doc)
    if not isinstance(auths, dict):
        raise CredentialsError("'auths' in the credentials file must be an object")
    return {_normalize_host(host): _entry_credentials(host, entry) for host, entry in auths.items()}


def load_docker_config(path: str | Path) -> dict[str, Credentials]:
    """Read a ``.dockerconfigjson`` file, as mounted from a dockerconfigjson Secret."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CredentialsError(f"cannot read credentials file {path}: {exc.strerror}") from exc
    return parse_docker_config(data)


def credentials_for(registry: str, config: dict[str, Credentials]) -> Credentials | None:
    """The credentials for ``registry`` (a host[:port] as in image references), if any."""
    return config.get(_normalize_host(registry))


@dataclass(frozen=True)
class Challenge:
    """One parsed ``WWW-Authenticate`` challenge."""

    scheme: str
    params: dict[str, str]


_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenge(header: str) -> Challenge:
    """Parse ``Bearer realm="...",service="...",scope="..."`` (or ``Basic realm=...``)."""
    header = header.strip()
    scheme, _, rest = header.partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        match = _PARAM_RE.match(rest, pos)
        if not match or match.end() == pos:
            break
        quoted, bare = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        params[match.group(1).lower()] = value
        pos = match.end()
    return Challenge(scheme.lower(), params)
