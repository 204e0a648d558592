# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""The OCI model: media types, annotations, platforms, descriptors, manifests, digests.

Every media type and annotation key the package reads or writes is named here: the
registry's manifest and index types, the tar layer types of containerDisks, and the disk
artifact types (ours, ``application/vnd.vmdiskimage.disk.v1.<format>[+<compression>]``,
and KubeVirt's ``application/vnd.kubevirt.disk.<format>[+<compression>]``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from . import compression
from .errors import InvalidArgument, UnsupportedManifest, VMDiskImageError
from .reference import ImageReference, validate_digest

# -- media types ---------------------------------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
#: Content-Types that name no manifest type: a manifest without ``mediaType`` served as
#: one of these is told by its fields.
GENERIC_CONTENT_TYPES = frozenset(
    ("", "application/json", "text/plain", "application/octet-stream", "binary/octet-stream")
)

#: The tar layer of each compression ``vmdiskimage push`` writes a containerDisk with.
OCI_TAR_LAYERS = {
    compression.NONE: "application/vnd.oci.image.layer.v1.tar",
    compression.GZIP: "application/vnd.oci.image.layer.v1.tar+gzip",
    compression.ZSTD: "application/vnd.oci.image.layer.v1.tar+zstd",
}
#: Every layer media type a containerDisk may have: tar, compressed or not.
TAR_LAYER_TYPES = frozenset(
    (
        *OCI_TAR_LAYERS.values(),
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.diff.tar.zstd",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    )
)

#: Config media types of images a container runtime can run, as a containerDisk is run.
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
IMAGE_CONFIG_TYPES = frozenset((OCI_CONFIG, DOCKER_CONFIG))

#: Our artifact type (manifest ``artifactType`` and config media type).
ARTIFACT_TYPE = "application/vnd.vmdiskimage.disk.v1"
CONFIG_MEDIA_TYPE = "application/vnd.vmdiskimage.disk.config.v1+json"
#: Our disk layer media types: ``<prefix><format>[+gzip|+zstd|+xz]``.
DISK_MEDIA_TYPE_PREFIX = "application/vnd.vmdiskimage.disk.v1."
KUBEVIRT_MEDIA_TYPE_PREFIX = "application/vnd.kubevirt.disk."
#: A disk layer media type, ours or KubeVirt's, with its ``format`` and ``compression``.
DISK_MEDIA_TYPE_RE = re.compile(
    rf"^(?:{re.escape(DISK_MEDIA_TYPE_PREFIX)}|{re.escape(KUBEVIRT_MEDIA_TYPE_PREFIX)})"
    r"(?P<format>[a-z0-9]+)(?:\+(?P<compression>gzip|zstd|xz))?$"
)

ANNOTATION_FORMAT = "vm.example.com/disk.format"
ANNOTATION_VIRTUAL_SIZE = "vm.example.com/disk.virtual-size"
ANNOTATION_UNCOMPRESSED_SIZE = "vm.example.com/disk.uncompressed-size"
ANNOTATION_TITLE = "org.opencontainers.image.title"
#: KubeVirt's VM export (one ``raw+zstd`` layer per volume): the volume's name, and the
#: size of its disk file as a Kubernetes quantity (``10Gi``).
ANNOTATION_KUBEVIRT_DISK_NAME = "io.kubevirt.disk.name"
ANNOTATION_KUBEVIRT_DISK_SIZE = "io.kubevirt.disk.size"


def disk_media_type(fmt: str, comp: str) -> str:
    """Our layer media type for a disk of ``fmt`` compressed with ``comp``."""
    return DISK_MEDIA_TYPE_PREFIX + fmt + ("" if comp == compression.NONE else f"+{comp}")


# -- digests -------------------------------------------------------------------------

#: The digest algorithms content can be verified with (``validate_digest`` allows these).
DIGEST_ALGORITHMS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}


def content_digest(data: bytes, algorithm: str) -> str:
    """The ``algorithm:hex`` digest of ``data``; an algorithm we cannot compute is refused."""
    if algorithm not in DIGEST_ALGORITHMS:
        raise UnsupportedManifest(
            f"digest algorithm {algorithm!r} cannot be verified; "
            f"supported: {', '.join(DIGEST_ALGORITHMS)}"
        )
    return f"{algorithm}:{DIGEST_ALGORITHMS[algorithm](data).hexdigest()}"


# -- platforms -----------------------------------------------------------------------

#: Architecture aliases, with the variant an alias implies (None: the one given).
_ARCH_ALIASES: dict[str, tuple[str, str | None]] = {
    "x86_64": ("amd64", None),
    "x86-64": ("amd64", None),
    "aarch64": ("arm64", None),
    "i386": ("386", ""),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
}
#: Variant spellings to their normal form, per architecture ("" is the default variant).
_VARIANTS: dict[str, dict[str, str]] = {
    "amd64": {"v1": ""},
    "arm64": {"8": "", "v8": "", "v8.0": "", "9": "v9", "9.0": "v9", "v9.0": "v9"},
    "arm": {"": "v7", "5": "v5", "6": "v6", "7": "v7", "8": "v8"},
}
#: The lowest variant number of the architectures whose newer variants run older ones.
_LOWEST_VARIANT = {"amd64": 1, "arm": 5}


def _normal(os: str, architecture: str, variant: str) -> tuple[str, str, str]:
    """``(os, architecture, variant)`` in containerd's normal form: lower case, aliases
    resolved, each variant spelt one way (amd64 = amd64/v1, arm64 = arm64/v8, arm =
    arm/v7)."""
    arch, var = architecture.lower(), variant.lower()
    arch, implied = _ARCH_ALIASES.get(arch, (arch, None))
    var = var if implied is None else implied
    return os.lower(), arch, _VARIANTS.get(arch, {}).get(var, var)


# -- the model -----------------------------------------------------------------------


@dataclass(frozen=True)
class Platform:
    """An OCI platform: ``os/architecture[/variant]``, matched as containerd matches it."""

    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``linux/arm64/v8`` (the form of ``--platform``)."""
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidArgument(f"platform {text!r} must look like os/arch[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Platform:
        """The platform an index entry's ``platform`` object names (``?`` for a missing part)."""
        return cls(spec.get("os", "?"), spec.get("architecture", "?"), spec.get("variant"))

    def _accepted(self) -> list[tuple[str, str, str]]:
        """The normal forms this platform runs, best first: itself, then for amd64/vN and
        arm/vN each variant below, as containerd's default matcher orders them (without
        its cross-architecture fallbacks, 386 for amd64 and 32-bit arm for arm64: a disk
        boots on the architecture it was built for)."""
        os, arch, variant = _normal(self.os, self.architecture, self.variant or "")
        accepted = [(os, arch, variant)]
        number = variant.removeprefix("v")
        if arch in _LOWEST_VARIANT and number.isdigit():
            for n in range(int(number) - 1, _LOWEST_VARIANT[arch] - 1, -1):
                accepted.append((os, arch, _VARIANTS[arch].get(f"v{n}", f"v{n}")))
        return accepted

    def rank(self, spec: dict[str, Any] | None) -> int | None:
        """How well an index entry's ``platform`` object suits this platform (0 best), or
        None if it does not run here."""
        if not spec:
            return None
        entry = _normal(*(str(spec.get(k) or "") for k in ("os", "architecture", "variant")))
        accepted = self._accepted()
        return accepted.index(entry) if entry in accepted else None

    def matches(self, spec: dict[str, Any] | None) -> bool:
        """Whether an index entry's ``platform`` object runs on this platform."""
        return self.rank(spec) is not None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


DEFAULT_PLATFORM = Platform()


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: dict[str, Any] | None = None
    artifact_type: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Descriptor:
        try:
            digest = validate_digest(str(data["digest"]))
            size = int(data["size"])
        except (KeyError, TypeError, ValueError, VMDiskImageError) as exc:
            raise UnsupportedManifest(f"malformed descriptor in manifest: {data!r}") from exc
        if size < 0:
            raise UnsupportedManifest(f"descriptor {digest} has a negative size")
        return cls(
            media_type=str(data.get("mediaType", "")),
            digest=digest,
            size=size,
            annotations=dict(data.get("annotations") or {}),
            platform=data.get("platform"),
            artifact_type=data.get("artifactType"),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            data["annotations"] = self.annotations
        if self.platform:
            data["platform"] = self.platform
        if self.artifact_type:
            data["artifactType"] = self.artifact_type
        return data


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as fetched: raw bytes, digest and the parsed document."""

    media_type: str
    digest: str
    raw: bytes = field(repr=False)
    data: dict[str, Any] = field(repr=False)

    @classmethod
    def from_bytes(cls, raw: bytes, content_type: str | None = None) -> Manifest:
        digest = content_digest(raw, "sha256")
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise UnsupportedManifest(f"manifest {digest} is not JSON") from exc
        if not isinstance(data, dict):
            raise UnsupportedManifest(f"manifest {digest} is not a JSON object")
        served_as = (content_type or "").split(";")[0].strip().lower()
        media_type = data.get("mediaType") or (
            _type_by_fields(data, digest, served_as)
            if served_as in GENERIC_CONTENT_TYPES
            else served_as
        )
        if media_type in DOCKER_SCHEMA1 or data.get("schemaVersion") == 1:
            raise UnsupportedManifest(
                f"manifest {digest} is Docker schema 1, which is deprecated and unsupported; "
                "re-push the image with a current tool"
            )
        if media_type not in INDEX_TYPES + MANIFEST_TYPES:
            raise UnsupportedManifest(f"manifest {digest} has unsupported media type {media_type}")
        return cls(media_type, digest, raw, data)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def manifests(self) -> list[Descriptor]:
        return [Descriptor.from_dict(d) for d in self.data.get("manifests") or []]

    @property
    def layers(self) -> list[Descriptor]:
        return [Descriptor.from_dict(d) for d in self.data.get("layers") or []]

    @property
    def config(self) -> Descriptor | None:
        cfg = self.data.get("config")
        return Descriptor.from_dict(cfg) if cfg else None

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.data.get("annotations") or {})

    @property
    def artifact_type(self) -> str | None:
        """OCI 1.1 ``artifactType``, falling back to the config media type like ORAS does."""
        if self.data.get("artifactType"):
            return str(self.data["artifactType"])
        cfg = self.config
        return cfg.media_type if cfg else None


def _type_by_fields(data: dict[str, Any], digest: str, served_as: str) -> str:
    """The type of a manifest that names none, from its fields (OCI allows omitting
    ``mediaType``): ``manifests`` an index, ``layers``/``config`` an image manifest."""
    if data.get("schemaVersion") == 1 or "fsLayers" in data:
        return DOCKER_SCHEMA1[0]
    index = "manifests" in data
    image = "layers" in data or "config" in data
    if index != image:
        return OCI_INDEX if index else OCI_MANIFEST
    has = "both manifests and layers or config" if index else "neither manifests nor layers"
    raise UnsupportedManifest(
        f"manifest {digest} names no mediaType, was served as {served_as or 'no type'}, and "
        f"has {has}: it is neither an image index nor an image manifest"
    )


def select_manifest(entries: list[Descriptor], platform: Platform) -> Descriptor | None:
    """The index entry for ``platform``: the best match, else (a last resort) the first
    entry that names no platform, else None."""
    ranked = [
        (rank, i) for i, d in enumerate(entries) if (rank := platform.rank(d.platform)) is not None
    ]
    if ranked:
        return entries[min(ranked)[1]]
    return next((d for d in entries if not d.platform), None)


@dataclass(frozen=True)
class ResolvedImage:
    """An image resolved to one platform manifest."""

    reference: ImageReference  # pinned to the platform manifest's digest
    manifest: Manifest
    index_digest: str | None = None
    platform: Platform | None = None

    @property
    def digest(self) -> str:
        return self.manifest.digest
