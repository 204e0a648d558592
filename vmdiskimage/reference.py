# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""OCI image references: ``[registry/]repository[:tag][@digest]``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidReference

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$")
_HOST_RE = re.compile(r"^(?:\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?$")


def validate_digest(digest: str) -> str:
    """Return ``digest`` if it is a ``sha256:``/``sha512:`` digest, else raise."""
    if not _DIGEST_RE.match(digest):
        raise InvalidReference(f"{digest!r} is not a valid digest (expected sha256:<64 hex>)")
    return digest


@dataclass(frozen=True)
class ImageReference:
    """A parsed image reference; ``registry`` is the name users write (``docker.io``)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageReference:
        """Parse ``text`` the way docker and skopeo do (``docker://`` prefix allowed)."""
        original = text
        text = text.strip()
        if text.startswith("docker://"):
            text = text[len("docker://") :]
        if not text:
            raise InvalidReference("the image reference is empty")
        digest = None
        if "@" in text:
            text, digest = text.split("@", 1)
            validate_digest(digest)
        first, sep, rest = text.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            registry, remainder = first, rest
            if not _HOST_RE.match(registry):
                raise InvalidReference(f"{original!r}: {registry!r} is not a valid registry host")
        else:
            registry, remainder = DOCKER_HUB, text
        tag = None
        name, colon, maybe_tag = remainder.rpartition(":")
        if colon and "/" not in maybe_tag:
            remainder, tag = name, maybe_tag
            if not _TAG_RE.match(tag):
                raise InvalidReference(f"{original!r}: {tag!r} is not a valid tag")
        if registry in (DOCKER_HUB, "index.docker.io") and "/" not in remainder:
            remainder = f"library/{remainder}"
        if not _REPOSITORY_RE.match(remainder):
            raise InvalidReference(
                f"{original!r}: repository {remainder!r} must be lowercase letters, digits "
                "and separators"
            )
        if tag is None and digest is None:
            tag = "latest"
        return cls(registry=registry, repository=remainder, tag=tag, digest=digest)

    @property
    def api_host(self) -> str:
        """The host the registry API answers on (Docker Hub has a separate one)."""
        if self.registry in (DOCKER_HUB, "index.docker.io"):
            return DOCKER_HUB_API
        return self.registry

    @property
    def ref(self) -> str:
        """What goes after ``/manifests/``: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> ImageReference:
        """The same image pinned to ``digest``."""
        return ImageReference(self.registry, self.repository, self.tag, validate_digest(digest))

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text
