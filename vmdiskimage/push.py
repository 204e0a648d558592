# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""``vmdiskimage push``: publish a local raw or qcow2 disk as an OCI artifact or containerDisk.

An **artifact** is one layer, the disk file itself compressed (zstd by default), with
our media types and annotations carrying the format, virtual and uncompressed size,
so the operator can size the volume from the manifest alone. A **containerDisk** is a
KubeVirt-style image: one tar layer holding ``disk/disk.img`` (uid/gid 107).
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import compression, formats
from .errors import BackingFileRefused, InvalidArgument, UnsupportedFormat
from .oci import (
    ANNOTATION_FORMAT,
    ANNOTATION_TITLE,
    ANNOTATION_UNCOMPRESSED_SIZE,
    ANNOTATION_VIRTUAL_SIZE,
    ARTIFACT_TYPE,
    CONFIG_MEDIA_TYPE,
    OCI_CONFIG,
    OCI_MANIFEST,
    OCI_TAR_LAYERS,
    Platform,
    content_digest,
    disk_media_type,
)
from .reference import ImageReference
from .registry import DEFAULT_OPTIONS, RegistryClient, RegistryOptions
from .sources import ARTIFACT, CONTAINER_DISK

CHUNK = 4 << 20
#: KubeVirt runs the disk as the qemu user (uid/gid 107).
CONTAINER_DISK_UID = 107


@dataclass
class PushResult:
    reference: str  # pinned to the pushed manifest's digest
    digest: str
    layer_digest: str
    layer_size: int
    format: str
    virtual_size: int


class _HashingFile:
    """A write-only file that hashes and counts what passes through."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


def _compressor(
    comp: str, out: Any, level: int | None, size: int | None
) -> tuple[Any, Callable[[], None]]:
    """``(writer, finish)`` for a compressed stream into ``out``."""
    if comp == compression.NONE:
        return out, lambda: None
    if comp == compression.ZSTD:
        import zstandard

        cctx = zstandard.ZstdCompressor(level=level or 3, threads=-1, write_content_size=True)
        writer = cctx.stream_writer(out, size=size if size is not None else -1, closefd=False)
        return writer, writer.close
    if comp == compression.GZIP:
        try:
            from zlib_ng import zlib_ng as zlib_mod
        except ImportError:  # pragma: no cover
            import zlib as zlib_mod  # type: ignore[no-redef]
        cobj: Any = zlib_mod.compressobj(level if level is not None else 6, 8, 31)
    elif comp == compression.XZ:
        cobj = lzma.LZMACompressor(preset=level if level is not None else 6)
    else:
        raise InvalidArgument(f"compression {comp!r} is not one of {compression.COMPRESSIONS}")

    class _Writer:
        def write(self, data: Any) -> int:
            out.write(cobj.compress(data))
            return len(data)

    return _Writer(), lambda: out.write(cobj.flush())


def _copy_file(src: IO[bytes], dst: Any, extra: Any = None) -> None:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while n := src.readinto(buf):
        dst.write(view[:n])
        if extra is not None:
            extra.write(view[:n])


def describe_disk(path: str | Path) -> formats.FormatInfo:
    """Format and virtual size of a local disk file (qemu-img checks non-raw ones)."""
    with open(path, "rb") as fh:
        info = formats.detect(fh.read(formats.DETECT_BYTES))
    size = os.stat(path).st_size
    if info.format == formats.RAW:
        return formats.FormatInfo(formats.RAW, size)
    if info.format not in (formats.QCOW2, formats.VMDK, formats.VHD, formats.VHDX):
        raise UnsupportedFormat(f"{path} is a {info.format} image; push raw or qcow2 disks")
    details = formats.qemu_img_info(path, info.format)
    if info.has_backing_file:
        raise BackingFileRefused(f"{path} has a backing file; flatten it first")
    return formats.FormatInfo(info.format, int(details["virtual-size"]))


def build_artifact_layer(
    disk: str | Path, out: IO[bytes], comp: str, level: int | None = None
) -> tuple[str, int]:
    """Compress ``disk`` into ``out``; return ``(digest, size)`` of the compressed layer."""
    hashing = _HashingFile(out)
    writer, finish = _compressor(comp, hashing, level, os.stat(disk).st_size)
    with open(disk, "rb") as src:
        _copy_file(src, writer)
    finish()
    return hashing.digest, hashing.size


def build_container_disk_layer(
    disk: str | Path, out: IO[bytes], comp: str, level: int | None = None, name: str = "disk.img"
) -> tuple[str, int, str]:
    """Tar ``disk`` as ``disk/<name>``; return ``(digest, size, diff_id)`` of the layer."""
    hashing = _HashingFile(out)
    size = os.stat(disk).st_size
    writer, finish = _compressor(comp, hashing, level, None)
    diff = hashlib.sha256()

    class _Tee:
        def write(self, data: Any) -> int:
            diff.update(data)
            return writer.write(data)

    tee = _Tee()
    directory = tarfile.TarInfo("disk")
    directory.type = tarfile.DIRTYPE
    directory.mode = 0o555
    directory.uid = directory.gid = CONTAINER_DISK_UID
    entry = tarfile.TarInfo(f"disk/{name}")
    entry.size = size
    entry.mode = 0o440
    entry.uid = entry.gid = CONTAINER_DISK_UID
    for info in (directory, entry):
        tee.write(info.tobuf(format=tarfile.PAX_FORMAT))
    with open(disk, "rb") as src:
        _copy_file(src, tee)
    tee.write(bytes(-size % 512) + bytes(1024))
    finish()
    return hashing.digest, hashing.size, "sha256:" + diff.hexdigest()


def _json_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def push(
    disk: str | Path,
    reference: str | ImageReference,
    *,
    kind: str = ARTIFACT,
    comp: str = compression.ZSTD,
    level: int | None = None,
    platform: str | Platform = "linux/amd64",
    client: RegistryClient | None = None,
    registry: RegistryOptions = DEFAULT_OPTIONS,
    workdir: str | Path | None = None,
) -> PushResult:
    """Package ``disk`` as ``kind`` (artifact or containerDisk) and push it to ``reference``.

    ``registry`` says how to reach the registry, unless a ``client`` is given.
    """
    if isinstance(reference, str):
        reference = ImageReference.parse(reference)
    if isinstance(platform, str):
        platform = Platform.parse(platform)
    if kind not in (ARTIFACT, CONTAINER_DISK):
        raise InvalidArgument(f"kind {kind!r} must be {ARTIFACT} or {CONTAINER_DISK}")
    if kind == CONTAINER_DISK and comp not in OCI_TAR_LAYERS:
        raise InvalidArgument(
            f"containerDisk layers can be {', '.join(OCI_TAR_LAYERS)}, not {comp}"
        )
    info = describe_disk(disk)
    assert info.virtual_size is not None
    own = client is None
    if client is None:
        client = RegistryClient.for_reference(reference, registry)
    repo = reference.repository
    try:
        with tempfile.TemporaryDirectory(prefix="vmdiskimage-push-", dir=workdir) as tmp:
            layer_path = Path(tmp) / "layer"
            with open(layer_path, "wb") as out:
                if kind == ARTIFACT:
                    digest, size = build_artifact_layer(disk, out, comp, level)
                    diff_id = None
                else:
                    digest, size, diff_id = build_container_disk_layer(disk, out, comp, level)
            file_size = os.stat(disk).st_size
            if kind == ARTIFACT:
                annotations = {
                    ANNOTATION_FORMAT: info.format,
                    ANNOTATION_VIRTUAL_SIZE: str(info.virtual_size),
                    ANNOTATION_UNCOMPRESSED_SIZE: str(file_size),
                    ANNOTATION_TITLE: Path(disk).name,
                }
                layer = {
                    "mediaType": disk_media_type(info.format, comp),
                    "digest": digest,
                    "size": size,
                    "annotations": annotations,
                }
                config = _json_bytes(
                    {
                        "format": info.format,
                        "virtualSize": info.virtual_size,
                        "uncompressedSize": file_size,
                        "architecture": platform.architecture,
                        "os": platform.os,
                    }
                )
                config_type = CONFIG_MEDIA_TYPE
            else:
                layer = {"mediaType": OCI_TAR_LAYERS[comp], "digest": digest, "size": size}
                image_config: dict[str, Any] = {
                    "architecture": platform.architecture,
                    "os": platform.os,
                    "config": {},
                    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                }
                if platform.variant:
                    image_config["variant"] = platform.variant
                config = _json_bytes(image_config)
                config_type = OCI_CONFIG
            config_digest = content_digest(config, "sha256")
            client.upload_blob(repo, config_digest, len(config), lambda: _BytesOpener(config))
            # upload_blob opens (and reopens, on a retry) the file itself and closes it.
            client.upload_blob(repo, digest, size, lambda: open(layer_path, "rb"))  # noqa: SIM115
            manifest: dict[str, Any] = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": config_type, "digest": config_digest, "size": len(config)},
                "layers": [layer],
            }
            if kind == ARTIFACT:
                manifest["artifactType"] = ARTIFACT_TYPE
            raw = _json_bytes(manifest)
            manifest_digest = client.put_manifest(repo, reference.ref, raw, OCI_MANIFEST)
    finally:
        if own:
            client.close()
    return PushResult(
        reference=str(reference.with_digest(manifest_digest)),
        digest=manifest_digest,
        layer_digest=digest,
        layer_size=size,
        format=info.format,
        virtual_size=info.virtual_size,
    )


def _BytesOpener(data: bytes) -> IO[bytes]:
    import io

    return io.BytesIO(data)
