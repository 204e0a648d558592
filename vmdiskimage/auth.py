# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""Registry credentials (dockerconfigjson files) and WWW-Authenticate challenges."""

from __future__ import annotations

import base64
import fnmatch
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


_DOCKER_HUB = ("index.docker.io", "registry-1.docker.io", "docker.io")


def _split_key(key: str) -> tuple[str, str]:
    """An ``auths`` key (or a registry) as (host[:port], repository prefix).

    ``https://index.docker.io/v1/`` -> (``docker.io``, ""): the path of Docker Hub's
    legacy key is the API version, not a repository. ``reg:5000/team/`` -> (``reg:5000``,
    ``team``).
    """
    key = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", key.strip())
    host, _, path = key.partition("/")
    host, path = host.lower(), path.strip("/")
    if host in _DOCKER_HUB:
        return "docker.io", "" if path in ("v1", "v2") else path
    return host, path


def _split_port(host: str) -> tuple[str, str]:
    name, sep, port = host.rpartition(":")
    return (name, port) if sep and port.isdigit() else (host, "")


def _entry_credentials(key: str, entry: object) -> Credentials | None:
    """The credentials of one ``auths`` entry; None for an entry that holds none."""
    if not isinstance(entry, dict):
        raise CredentialsError(f"credentials entry for {key!r} is not an object")
    username = entry.get("username")
    password = entry.get("password")
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(entry["auth"], validate=False).decode("utf-8")
        except (ValueError, UnicodeDecodeError) as exc:
            raise CredentialsError(f"the 'auth' field for {key!r} is not base64 user:pass") from exc
        username, sep, password = decoded.partition(":")
        if not sep:
            raise CredentialsError(
                f"the 'auth' field for {key!r} has no ':' between user and password"
            )
    elif not username and not password:
        return None  # {} (Docker Desktop writes it beside a credential store): anonymous
    if not username or password is None:
        raise CredentialsError(f"credentials for {key!r} have neither 'auth' nor username/password")
    return Credentials(str(username), str(password))


@dataclass(frozen=True)
class _Entry:
    """One ``auths`` key and what it holds: credentials, none (anonymous) or a problem."""

    host: str  # lowercased host[:port]; a part of the name may be a glob pattern
    path: str  # repository prefix; "" for the whole registry
    credentials: Credentials | None
    problem: str | None = None

    @classmethod
    def parse(cls, key: str, value: object) -> _Entry:
        host, path = _split_key(key)
        try:
            return cls(host, path, _entry_credentials(key, value))
        except CredentialsError as exc:
            return cls(host, path, None, str(exc))

    def matches(self, parts: list[str], port: str, repository: str) -> bool:
        """Whether this key covers the image (host name ``parts``, ``port``, ``repository``),
        as the kubelet matches keys to images."""
        glob_host, glob_port = _split_port(self.host)
        glob_parts = glob_host.split(".")
        if glob_port != port or len(glob_parts) != len(parts):
            return False  # "*.example.io" covers a.example.io, not example.io or a.b.example.io
        if not all(
            fnmatch.fnmatchcase(part, glob) for glob, part in zip(glob_parts, parts, strict=True)
        ):
            return False
        return repository.startswith(self.path)


class DockerConfig:
    """The ``auths`` of a dockerconfigjson: which credentials go with which image.

    Keys match as the kubelet matches them: a scheme and Docker Hub's ``/v1/`` are
    ignored; a key may hold a repository path (``registry/team``: a prefix of the image's
    repository) and glob patterns in host name parts (``*.azurecr.io``: one part per
    ``*``); the port must be the same. Of several matching keys, the greatest in reverse
    lexicographic order (the kubelet's order, most specific first) is used. An empty
    entry means anonymous, and a malformed entry is an error only for the images it
    matches, so one bad key does not break pulls from other registries.
    """

    def __init__(self, entries: list[_Entry]) -> None:
        self.entries = sorted(entries, key=lambda e: f"{e.host}/{e.path}", reverse=True)

    def credentials_for(self, registry: str, repository: str = "") -> Credentials | None:
        host, port = _split_port(_split_key(registry)[0])
        parts = host.split(".")
        for entry in self.entries:
            if entry.matches(parts, port, repository):
                if entry.problem:
                    raise CredentialsError(entry.problem)
                return entry.credentials
        return None


def parse_docker_config(data: bytes | str) -> DockerConfig:
    """Parse a dockerconfigjson document (or the legacy ``.dockercfg`` form)."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise CredentialsError(f"the credentials file is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise CredentialsError("the credentials file must hold a JSON object")
    auths = doc.get("auths", doc)
    if not isinstance(auths, dict):
        raise CredentialsError("'auths' in the credentials file must be an object")
    return DockerConfig([_Entry.parse(str(key), value) for key, value in auths.items()])


def load_docker_config(path: str | Path) -> DockerConfig:
    """Read a ``.dockerconfigjson`` file, as mounted from a dockerconfigjson Secret."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CredentialsError(f"cannot read credentials file {path}: {exc.strerror}") from exc
    return parse_docker_config(data)


def credentials_for(
    registry: str, config: DockerConfig, repository: str = ""
) -> Credentials | None:
    """The credentials for an image of ``registry`` (host[:port]) and ``repository``, if any."""
    return config.credentials_for(registry, repository)


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
