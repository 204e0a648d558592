# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""Where the disk sits in an image: containerDisk layers or an OCI artifact layer.

* **containerDisk** (KubeVirt): a container image whose filesystem holds one regular
  file directly under ``disk/``. Layers are walked from the top one down, the way the
  merged filesystem resolves them, so a whiteout in an upper layer hides a disk below it
  and the disk layer itself streams in one pass. Links, devices, ``..`` paths and
  sparse tar entries are refused as the disk.
* **artifact**: a manifest with a disk layer, recognised by media type (ours or
  KubeVirt's, see :mod:`vmdiskimage.oci`) or by the
  :data:`~vmdiskimage.oci.ANNOTATION_FORMAT` annotation. The layer is the disk file itself,
  possibly gzip, zstd or xz compressed. A KubeVirt VM export holds one layer per volume;
  the disk to import is then chosen by name (:func:`disk_name`).
* **a file pushed by oras**: ``oras push`` types every file it pushes as a plain tar
  layer (``application/vnd.oci.image.layer.v1.tar``) under an empty config. A manifest
  without an image config is no container image (a runtime cannot run it), so its tar
  layer is a file, and the file's first bytes tell what it is: a tar (a containerDisk
  layer, walked as one) or the disk itself (an artifact).

:func:`inspect` reads the manifest and only the first bytes of the disk;
:func:`open_disk` streams the whole disk and verifies every blob it read.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from . import compression, formats, sizing
from .errors import (
    DiskNameRequired,
    DiskNotFound,
    InvalidArgument,
    UnsafeDisk,
    UnsupportedFormat,
    UnsupportedManifest,
)
from .oci import (
    ANNOTATION_FORMAT,
    ANNOTATION_KUBEVIRT_DISK_NAME,
    ANNOTATION_KUBEVIRT_DISK_SIZE,
    ANNOTATION_TITLE,
    ANNOTATION_UNCOMPRESSED_SIZE,
    ANNOTATION_VIRTUAL_SIZE,
    DISK_MEDIA_TYPE_PREFIX,
    DISK_MEDIA_TYPE_RE,
    IMAGE_CONFIG_TYPES,
    KUBEVIRT_MEDIA_TYPE_PREFIX,
    TAR_LAYER_TYPES,
    Descriptor,
    Manifest,
    Platform,
    ResolvedImage,
)
from .reference import ImageReference
from .registry import RegistryClient
from .streams import Replay, drain, read_head
from .tarwalk import HEADER_SIZE, TarBudget, TarEntry, TarReader, starts_a_tar

CONTAINER_DISK = "containerDisk"
ARTIFACT = "artifact"
#: What :func:`classify` calls a tar-typed layer of a manifest that is no container
#: image: its bytes decide whether it is a containerDisk layer or an artifact's disk.
FILE = "file"

HEAD_BYTES = formats.DETECT_BYTES
#: The first bytes of a layer blob its compression is told from.
BLOB_HEAD_BYTES = 32
log = logging.getLogger(__name__)


@dataclass
class DiskInfo:
    """What :func:`inspect` learns about an image's disk."""

    reference: str  # pinned to the platform manifest digest
    digest: str  # the platform manifest digest
    index_digest: str | None
    kind: str  # containerDisk | artifact
    layer: Descriptor  # the blob holding the disk
    compression: str
    format: str  # raw, qcow2, vmdk, vpc, vhdx, iso (raw data: RAW_DATA_FORMATS)
    virtual_size: int | None  # None when only reading the whole stream can tell
    disk_size: int | None  # bytes of the (uncompressed) disk file, when declared
    disk_path: str | None = None  # containerDisk: the file's path in the image
    has_backing_file: bool = False
    #: Another file qemu-img would open for the disk (a qcow2 data file, vmdk extents).
    external_file: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    #: Where ``virtual_size`` and ``disk_size`` were read, for each one known.
    sizes_from: dict[str, str] = field(default_factory=dict)
    #: The name the disk layer of an artifact goes by (:func:`disk_name`), if any.
    disk_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["layer"] = self.layer.to_dict()
        return data


# -- sizes ---------------------------------------------------------------------------

#: A size and where it was read; ``(None, None)`` when only reading the disk can tell.
Size = tuple[int | None, str | None]
UNKNOWN: Size = (None, None)
_SIZE_HEADERS = {
    formats.QCOW2: "qcow2 header",
    formats.VMDK: "vmdk header",
    formats.VHD: "VHD footer",
}


def _header_size(detected: formats.FormatInfo) -> Size:
    if detected.virtual_size is None:
        return UNKNOWN
    where = _SIZE_HEADERS.get(detected.format, f"{detected.format} header")
    return detected.virtual_size, f"{where} in the disk's first bytes"


def container_disk_sizes(
    entry_size: int, path: str, detected: formats.FormatInfo
) -> tuple[Size, Size]:
    """``(virtual size, disk file size)`` of the disk file ``path`` of a containerDisk."""
    in_tar = (entry_size, f"size of {path} in its tar header")
    raw_data = detected.format in formats.RAW_DATA_FORMATS
    return (in_tar if raw_data else _header_size(detected)), in_tar


def artifact_file_size(layer: Descriptor, comp: str) -> Size:
    """The disk file's size an artifact layer declares: annotated (ours, or KubeVirt's
    quantity), or the uncompressed layer."""
    declared = _int_annotation(layer.annotations, ANNOTATION_UNCOMPRESSED_SIZE)
    if declared is not None:
        return declared, f"layer annotation {ANNOTATION_UNCOMPRESSED_SIZE}"
    exported = _quantity_annotation(layer.annotations, ANNOTATION_KUBEVIRT_DISK_SIZE)
    if exported is not None:
        return exported, f"layer annotation {ANNOTATION_KUBEVIRT_DISK_SIZE}"
    if comp == compression.NONE:
        return layer.size, "layer size in the manifest (the layer is the uncompressed disk)"
    return UNKNOWN


def artifact_virtual_size(
    layer: Descriptor, comp: str, detected: formats.FormatInfo, file_size: Size, blob_head: bytes
) -> Size:
    """An artifact disk's virtual size: its header's, or for raw data the file size, the
    annotated virtual size or the content size of a zstd layer's first frame."""
    if detected.format not in formats.RAW_DATA_FORMATS:
        return _header_size(detected)
    if file_size[0]:
        return file_size
    annotated = _int_annotation(layer.annotations, ANNOTATION_VIRTUAL_SIZE)
    if annotated is not None:
        return annotated, f"layer annotation {ANNOTATION_VIRTUAL_SIZE}"
    if comp == compression.ZSTD and (framed := _zstd_content_size(blob_head)) is not None:
        return framed, "content size in the first zstd frame header of the layer"
    return UNKNOWN


def _sizes_from(virtual: Size, file_size: Size) -> dict[str, str]:
    named = (("virtual_size", virtual[1]), ("disk_size", file_size[1]))
    return {key: where for key, where in named if where}


# -- picking the layer ---------------------------------------------------------------


def _int_annotation(annotations: dict[str, str], key: str) -> int | None:
    value = annotations.get(key)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError as exc:
        raise UnsupportedManifest(f"annotation {key}={value!r} is not a byte count") from exc
    if number < 0:
        raise UnsupportedManifest(f"annotation {key}={value!r} is negative")
    return number


def _quantity_annotation(annotations: dict[str, str], key: str) -> int | None:
    value = annotations.get(key)
    if value is None:
        return None
    try:
        return sizing.parse_quantity(value)
    except InvalidArgument as exc:
        raise UnsupportedManifest(
            f"annotation {key}={value!r} is not a size such as 10Gi or 10737418240"
        ) from exc


def disk_name(layer: Descriptor) -> str | None:
    """The name a disk layer goes by: its KubeVirt volume name, else its file name."""
    annotations = layer.annotations
    return annotations.get(ANNOTATION_KUBEVIRT_DISK_NAME) or annotations.get(ANNOTATION_TITLE)


def _names(layers: list[Descriptor]) -> str:
    """The layers' names, for a message: ``'rootdisk' and 'datadisk'``."""
    names = [repr(n) for d in layers if (n := disk_name(d))]
    unnamed = len(layers) - len(names)
    if unnamed:
        names.append(
            ("a layer" if unnamed == 1 else f"{unnamed} layers")
            + f" without a name ({ANNOTATION_KUBEVIRT_DISK_NAME} or {ANNOTATION_TITLE})"
        )
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _pick(layers: list[Descriptor], name: str | None, resolved: ResolvedImage) -> Descriptor:
    """The disk layer named ``name``; without a name, the only one there is."""
    names = [disk_name(d) for d in layers]
    if name is None:
        if len(layers) == 1:
            return layers[0]
        raise DiskNameRequired(
            f"image {resolved.reference} holds {len(layers)} disks, {_names(layers)}: "
            "name the one to import (spec.diskName, or --disk-name)",
            disk_names=names,
        )
    chosen = [d for d, n in zip(layers, names, strict=True) if n == name]
    if not chosen:
        raise DiskNotFound(
            f"image {resolved.reference} holds no disk named {name!r}; "
            f"{'its disk is' if len(layers) == 1 else 'its disks are'} {_names(layers)}",
            disk_names=names,
        )
    if len(chosen) > 1:
        raise UnsupportedManifest(
            f"image {resolved.reference} holds {len(chosen)} disk layers named {name!r}",
            disk_names=names,
        )
    return chosen[0]


def _disk_layers(layers: list[Descriptor]) -> list[Descriptor]:
    return [
        d
        for d in layers
        if DISK_MEDIA_TYPE_RE.match(d.media_type) or ANNOTATION_FORMAT in d.annotations
    ]


def is_container_image(manifest: Manifest) -> bool:
    """Whether a container runtime could run the image: its config is an image config.

    A containerDisk is run by the kubelet, so it has one; ``oras push`` writes an empty
    config (``application/vnd.oci.empty.v1+json``, or ``application/vnd.unknown.config.v1+json``
    with ``--image-spec v1.0``), and so do other artifact tools.
    """
    config = manifest.config
    return config is not None and config.media_type in IMAGE_CONFIG_TYPES


def classify(resolved: ResolvedImage, name: str | None = None) -> tuple[str, list[Descriptor]]:
    """``(kind, layers)``: the artifact's disk layer, the :data:`FILE` whose bytes decide,
    or the containerDisk's tar layers. ``name`` picks one of several disk layers or files
    (:func:`disk_name`); a containerDisk has one disk and takes no name."""
    layers = resolved.manifest.layers
    if not layers:
        raise DiskNotFound(f"image {resolved.reference} has no layers")
    disks = _disk_layers(layers)
    if disks:
        return ARTIFACT, [_pick(disks, name, resolved)]
    if not is_container_image(resolved.manifest):
        files = [d for d in layers if d.media_type in TAR_LAYER_TYPES]
        if files:
            return FILE, [_pick(files, name, resolved)]
    unknown = [d.media_type for d in layers if d.media_type not in TAR_LAYER_TYPES]
    if unknown:
        raise UnsupportedManifest(
            f"image {resolved.reference} is neither a containerDisk (layer media types "
            f"{', '.join(sorted(set(unknown)))} are not tar layers) nor a disk artifact "
            f"(no layer of type {DISK_MEDIA_TYPE_PREFIX}* or {KUBEVIRT_MEDIA_TYPE_PREFIX}*)"
        )
    if name is not None:
        raise DiskNotFound(
            f"image {resolved.reference} is a containerDisk, whose one disk is the file under "
            f"disk/; the disk name {name!r} only picks a layer of an artifact, so leave it out"
        )
    return CONTAINER_DISK, layers


# -- streams -------------------------------------------------------------------------


class _Layer:
    """One layer blob: verified, read ahead in a thread, decompressed as its bytes say."""

    def __init__(self, client: RegistryClient, repository: str, layer: Descriptor) -> None:
        self.blob = client.open_blob(repository, layer.digest, layer.size)
        self._ahead = self.blob.read_ahead()
        try:
            self.head = self._ahead.peek(BLOB_HEAD_BYTES)
            self.compression = _layer_compression(layer, self.head)
            self._decompressed = compression.open_decompressed(self._ahead, self.compression)
        except BaseException:
            self._ahead.close()
            raise
        self.data: Any = self._decompressed

    def sniff(self, size: int) -> bytes:
        """The first ``size`` decompressed bytes; :attr:`data` hands them out again."""
        head = read_head(self.data, size)
        self.data = Replay(head, self.data)
        return head

    def skip_rest(self) -> None:
        """Read the blob to its end, only hashed, never decompressed (verifies the digest)."""
        drain(self._ahead)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._decompressed.close()
        self._ahead.close()


class DiskStream(Replay):
    """The disk's bytes (``readinto``), its :class:`DiskInfo`, and :meth:`finish`.

    ``head`` holds the disk's first bytes, as read for detection; ``readinto`` hands
    them out again first. Call :meth:`finish` after reading the disk: it checks the rest
    of the layer and verifies its digest. Only then may the import be reported as done.
    """

    def __init__(
        self,
        info: DiskInfo,
        layer: _Layer,
        data: Any,
        head: bytes,
        rest: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(head, data)
        self.info = info
        self.blob = layer.blob
        self._layer = layer
        self._rest = rest

    def finish(self) -> None:
        """Check the rest of the layer and verify the blob's digest (raises on mismatch)."""
        if self._rest is not None:
            self._rest()
        else:
            drain(self._layer.data)
        self._layer.skip_rest()

    def close(self) -> None:
        self._layer.close()

    def __enter__(self) -> DiskStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _layer_compression(layer: Descriptor, blob_head: bytes) -> str:
    """The layer's compression, from its magic bytes.

    gzip, zstd and xz all start with magic bytes, so the bytes decide and the media
    type is only a label: mislabelled layers exist (skopeo 1.9 can push a reused gzip
    blob as ``tar+zstd``; some tools type compressed layers as plain ``tar``).
    """
    sniffed = compression.detect_magic(blob_head)
    declared = compression.from_media_type(layer.media_type)
    if declared and declared != sniffed:
        log.info("layer %s is labelled %s but its bytes are %s", layer.digest, declared, sniffed)
    return sniffed


def _zstd_content_size(blob_head: bytes) -> int | None:
    """The first zstd frame's declared content size (a size hint, never a limit)."""
    return compression.zstd_content_size(blob_head)


def _is_disk_candidate(parts: list[str], entry: TarEntry, hidden: set[str]) -> bool:
    """A file directly under ``disk/`` that no upper layer hides (directories are not)."""
    return (
        len(parts) == 2
        and parts[0] == "disk"
        and not parts[1].startswith(".wh.")
        and entry.type != b"5"
        and parts[1] not in hidden
    )


def _checked_parts(entry: TarEntry, layer: Descriptor) -> list[str]:
    parts = entry.parts
    if ".." in parts:
        raise UnsafeDisk(
            f"layer {layer.digest} holds {entry.name!r}, a path that climbs out "
            "with '..'; refusing the image"
        )
    return parts


def _check_rest_of_layer(
    tar: TarReader, layer: Descriptor, path: str, hidden: set[str]
) -> Callable[[], None]:
    """What :meth:`DiskStream.finish` runs: the disk's layer after the disk entry.

    ``tar -x`` keeps the last of two entries with one path, this importer reads the
    first: a scanner that extracts the image would check another disk than the VM
    gets. A second candidate disk is as ambiguous. Both are refused.
    """

    def check() -> None:
        while (entry := tar.next()) is not None:
            parts = _checked_parts(entry, layer)
            if not _is_disk_candidate(parts, entry, hidden):
                continue
            other = "disk/" + parts[1]
            if other == path:
                raise UnsafeDisk(
                    f"layer {layer.digest} holds {path} twice: tar -x would keep the last "
                    "copy and this importer read the first; refusing the image",
                    path=path,
                )
            raise UnsafeDisk(
                f"layer {layer.digest} holds two disks, {path} and {other!r}; a "
                "containerDisk has one file under disk/",
                path=path,
            )

    return check


def _container_disk(
    client: RegistryClient,
    resolved: ResolvedImage,
    layers: list[Descriptor],
    opened: _Layer | None = None,
) -> DiskStream:
    """The disk of a containerDisk; ``opened`` is its top layer when already open."""
    repository = resolved.reference.repository
    hidden: set[str] = set()
    budget = TarBudget()
    for layer in reversed(layers):
        source, opened = opened or _Layer(client, repository, layer), None
        try:
            tar = TarReader(source.data, budget)
            opaque = False
            whiteouts: set[str] = set()
            while (entry := tar.next()) is not None:
                parts = _checked_parts(entry, layer)
                if parts == [".wh.disk"] or parts == ["disk", ".wh..wh..opq"]:
                    opaque = True
                    continue
                if len(parts) == 2 and parts[0] == "disk" and parts[1].startswith(".wh."):
                    whiteouts.add(parts[1][4:])
                    continue
                if not _is_disk_candidate(parts, entry, hidden):
                    continue
                path = "disk/" + parts[1]
                if not entry.is_regular:
                    target = f" to {entry.linkname!r}" if entry.linkname else ""
                    raise UnsafeDisk(
                        f"{path} in layer {layer.digest} is a {entry.kind}{target}, not a regular "
                        "file; refusing it as the disk",
                        path=path,
                    )
                head = read_head(tar, min(HEAD_BYTES, entry.size))
                detected = formats.detect(head)
                virtual, file_size = container_disk_sizes(entry.size, path, detected)
                info = _disk_info(
                    resolved,
                    CONTAINER_DISK,
                    layer,
                    source,
                    detected,
                    virtual,
                    file_size,
                    disk_size=file_size[0],
                    disk_path=path,
                )
                rest = _check_rest_of_layer(tar, layer, path, hidden)
                return DiskStream(info, source, tar, head, rest)
            # No disk in this layer. Its tar is walked; what follows the end of the
            # archive is only hashed, never decompressed.
            source.skip_rest()
        except BaseException:
            source.close()
            raise
        source.close()
        if opaque:
            break
        hidden |= whiteouts
    raise DiskNotFound(
        f"image {resolved.reference} is not a containerDisk: no regular file under disk/"
    )


def _disk_info(
    resolved: ResolvedImage,
    kind: str,
    layer: Descriptor,
    source: _Layer,
    detected: formats.FormatInfo,
    virtual: Size,
    file_size: Size,
    **where: Any,
) -> DiskInfo:
    """What was found of a disk: the image, its layer, the detected format, the sizes and
    their origin; ``where`` has the fields only one kind of source knows."""
    return DiskInfo(
        reference=str(resolved.reference),
        digest=resolved.digest,
        index_digest=resolved.index_digest,
        kind=kind,
        layer=layer,
        compression=source.compression,
        format=detected.format,
        virtual_size=virtual[0],
        has_backing_file=detected.has_backing_file,
        external_file=detected.external_file,
        sizes_from=_sizes_from(virtual, file_size),
        **where,
    )


#: A layer's format label that names the detected format by another word: ``vhd`` is
#: qemu's ``vpc``, and an ISO 9660 image labelled raw is raw data all the same.
_ALIASES = {("vhd", formats.VHD), (formats.RAW, formats.ISO)}


def _artifact(
    client: RegistryClient,
    resolved: ResolvedImage,
    layer: Descriptor,
    opened: _Layer | None = None,
) -> DiskStream:
    """The disk of an artifact; ``opened`` is its layer when already open."""
    source = opened or _Layer(client, resolved.reference.repository, layer)
    try:
        file_size = artifact_file_size(layer, source.compression)
        declared = file_size[0]
        head = read_head(source.data, HEAD_BYTES if declared is None else min(HEAD_BYTES, declared))
        detected = formats.detect(head)
        annotated_format = layer.annotations.get(ANNOTATION_FORMAT)
        match = DISK_MEDIA_TYPE_RE.match(layer.media_type)
        labelled = annotated_format or (match.group("format") if match else None)
        if labelled and labelled != detected.format and (labelled, detected.format) not in _ALIASES:
            raise UnsupportedFormat(
                f"layer {layer.digest} is labelled {labelled} but its bytes are {detected.format}"
            )
        virtual = artifact_virtual_size(layer, source.compression, detected, file_size, source.head)
        info = _disk_info(
            resolved,
            ARTIFACT,
            layer,
            source,
            detected,
            virtual,
            file_size,
            disk_size=declared,
            disk_path=layer.annotations.get(ANNOTATION_TITLE),
            annotations=dict(layer.annotations),
            disk_name=disk_name(layer),
        )
    except BaseException:
        source.close()
        raise
    return DiskStream(info, source, source.data, head)


def _file(client: RegistryClient, resolved: ResolvedImage, layer: Descriptor) -> DiskStream:
    """A file pushed by oras: a tar is a containerDisk layer, anything else the disk."""
    source = _Layer(client, resolved.reference.repository, layer)
    try:
        is_tar = starts_a_tar(source.sniff(HEADER_SIZE))
    except BaseException:
        source.close()
        raise
    log.info("layer %s is a file; its bytes are %s", layer.digest, "a tar" if is_tar else "a disk")
    if is_tar:
        return _container_disk(client, resolved, [layer], source)
    return _artifact(client, resolved, layer, source)


def open_disk(
    client: RegistryClient, resolved: ResolvedImage, name: str | None = None
) -> DiskStream:
    """Open the disk of a resolved image (the one ``name`` names, if the image holds
    several) for streaming; close the result when done."""
    kind, layers = classify(resolved, name)
    if kind == ARTIFACT:
        return _artifact(client, resolved, layers[0])
    if kind == FILE:
        return _file(client, resolved, layers[0])
    return _container_disk(client, resolved, layers)


def inspect(
    client: RegistryClient,
    reference: ImageReference | str,
    platform: Platform | str | None = None,
    name: str | None = None,
) -> DiskInfo:
    """Resolve ``reference`` and describe its disk (the one ``name`` names, if it holds
    several), reading only its first bytes.

    The manifest (and index) digests are verified; the disk layer is not read to its end,
    so its digest is checked only by a full :func:`open_disk` + :meth:`DiskStream.finish`.
    """
    if isinstance(reference, str):
        reference = ImageReference.parse(reference)
    resolved = client.resolve(reference, platform)
    with open_disk(client, resolved, name) as disk:
        return disk.info
