# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""Disk format detection from bytes, and qemu-img for the formats that need it.

The format of a source is decided from its first bytes, never from a file name or
media type. qemu-img runs under an address-space and CPU-time limit, the way
KubeVirt CDI runs it, so a crafted image cannot take the pod down.

qemu-img opens the files an image names: backing files, a qcow2 external data file,
the extents of a vmdk descriptor. Any of them could be the pull secret or another file
of the pod, copied into the guest disk. So an image that names any file other than
itself is refused, from its first bytes (:func:`detect`) and again from ``qemu-img
info`` (:func:`qemu_img_info`); qemu-img is told never to open a backing file, and
runs in a Landlock sandbox (:mod:`vmdiskimage.sandbox`) that lets it open its source
and its target and nothing else of the pod.
"""

from __future__ import annotations

import json
import os
import re
import resource
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import sandbox
from .errors import (
    BackingFileRefused,
    ConversionFailed,
    CorruptData,
    ExternalFileRefused,
    UnsupportedFormat,
)

RAW = "raw"
QCOW2 = "qcow2"
VMDK = "vmdk"
VHD = "vpc"  # qemu-img's name for VHD
VHDX = "vhdx"
ISO = "iso"
TARGET_FORMATS = (RAW, QCOW2, VMDK)
#: Formats whose bytes are the disk itself, copied as they are: an ISO 9660 image (a
#: driver or installer CD, such as virtio-win) is raw data to qemu and to a VM.
RAW_DATA_FORMATS = (RAW, ISO)

#: Bytes of the disk needed to detect its format (the ISO signature is at 32 KiB).
DETECT_BYTES = 64 * 1024

# qemu-img limits: CDI uses 1 GiB of address space and 30 s of CPU for `info`.
INFO_LIMITS = {"address_space": 1 << 30, "cpu_seconds": 30}
CONVERT_LIMITS = {"address_space": 2 << 30, "cpu_seconds": 3600}

#: vmdk subformats whose one extent is the file itself; every other one (monolithicFlat,
#: twoGbMaxExtentSparse/Flat, vmfs*, ...) keeps its data in files the descriptor names.
VMDK_SELF_CONTAINED = ("monolithicSparse", "streamOptimized")

_QCOW2_INCOMPAT_DATA_FILE = 1 << 2
_QCOW2_EXT_END = 0
_QCOW2_EXT_DATA_FILE = 0x44415441
_VMDK_HEADER = struct.Struct("<4sIIQQQQIQQQ")  # magic .. grain offset
_VMDK_CREATE_TYPE = re.compile(rb'^\s*createType\s*=\s*"?([^"\r\n]*)"?', re.MULTILINE)
_VMDK_EXTENT = re.compile(
    rb'^\s*(?:RW|RDONLY|NOACCESS)\s+\d+\s+(\w+)(?:\s+"([^"]*)")?', re.MULTILINE
)


@dataclass(frozen=True)
class FormatInfo:
    """What the first bytes of a disk say."""

    format: str
    virtual_size: int | None = None  # None for raw (the data length is the size)
    has_backing_file: bool = False
    #: Another file qemu-img would open for this image (not a backing file), described.
    external_file: str | None = None


def _qcow2_data_file(head: bytes, version: int) -> str | None:
    """The external data file a qcow2 header names, or None."""
    if version == 2:
        extensions = 72
    else:
        if len(head) < 104:
            raise CorruptData("qcow2 header is truncated")
        incompatible = struct.unpack(">Q", head[72:80])[0]
        if incompatible & _QCOW2_INCOMPAT_DATA_FILE:
            return "an external data file (incompatible feature bit 2)"
        extensions = struct.unpack(">I", head[100:104])[0]
        if extensions < 104:
            raise CorruptData(f"qcow2 header length {extensions} is shorter than version 3's")
    pos = extensions
    while True:
        if pos + 8 > len(head):
            # qemu reads extensions up to the end of the first cluster; what this
            # function cannot see it cannot vouch for.
            raise UnsupportedFormat(
                f"the qcow2 header extensions run past the first {len(head)} bytes; refusing "
                "an image whose header cannot be checked"
            )
        kind, length = struct.unpack(">II", head[pos : pos + 8])
        if kind == _QCOW2_EXT_END:
            return None
        if kind == _QCOW2_EXT_DATA_FILE:
            name = head[pos + 8 : pos + 8 + length].decode("utf-8", "replace")
            return f"the external data file {name!r}"
        pos += 8 + (length + 7) // 8 * 8


def _qcow2(head: bytes) -> FormatInfo:
    if len(head) < 32:
        raise CorruptData("qcow2 header is truncated")
    version, backing_offset, _backing_len, _bits, size = struct.unpack(">IQIIQ", head[4:32])
    if version not in (2, 3):
        raise UnsupportedFormat(f"qcow2 version {version} is not supported")
    return FormatInfo(QCOW2, size, backing_offset != 0, _qcow2_data_file(head, version))


def _vmdk_descriptor_refs(text: bytes, *, embedded: bool) -> str | None:
    """What in a vmdk descriptor would make qemu-img open another file, or None."""
    match = _VMDK_CREATE_TYPE.search(text)
    create_type = match.group(1).decode("latin-1").strip() if match else None
    extents = _VMDK_EXTENT.findall(text)
    names = ", ".join(repr(name.decode("utf-8", "replace")) for _kind, name in extents)
    if not embedded:
        # A descriptor file holds no data: every extent it lists is another file.
        return f"a vmdk descriptor (createType {create_type!r}) whose extents are {names}"
    if create_type is not None and create_type not in VMDK_SELF_CONTAINED:
        return f"an embedded vmdk descriptor of createType {create_type!r} (extents {names})"
    if len(extents) > 1 or any(kind != b"SPARSE" for kind, _name in extents):
        return f"an embedded vmdk descriptor with the extents {names}"
    return None


def _vmdk_sparse(head: bytes) -> FormatInfo:
    if len(head) < _VMDK_HEADER.size:
        raise CorruptData("vmdk header is truncated")
    _magic, _version, _flags, capacity, _grain, desc_offset, desc_size, *_ = (
        _VMDK_HEADER.unpack_from(head)
    )
    if capacity == 0:
        # qemu then reads the embedded descriptor as the disk's, extents and all.
        return FormatInfo(
            VMDK,
            0,
            external_file="a capacity of 0, which makes qemu-img open the extents "
            "of its embedded descriptor",
        )
    # qemu reads a parent from the descriptor at byte 512, whatever descriptorOffset says.
    texts = [head[512 : 512 + 20 * 512]]
    if desc_offset and desc_size:
        texts.append(head[desc_offset * 512 : (desc_offset + desc_size) * 512])
    has_parent = any(b"parentFileNameHint" in text for text in texts)
    return FormatInfo(
        VMDK, capacity * 512, has_parent, _vmdk_descriptor_refs(texts[-1], embedded=True)
    )


def _vmdk_descriptor(head: bytes) -> FormatInfo:
    has_parent = b"parentFileNameHint" in head
    return FormatInfo(VMDK, None, has_parent, _vmdk_descriptor_refs(head, embedded=False))


def detect(head: bytes) -> FormatInfo:
    """Detect the disk format from its first bytes (at least :data:`DETECT_BYTES` when known)."""
    if head.startswith(b"QFI\xfb"):
        return _qcow2(head)
    if head.startswith(b"KDMV"):
        return _vmdk_sparse(head)
    if head.startswith(b"# Disk DescriptorFile"):
        return _vmdk_descriptor(head)
    if head.startswith(b"vhdxfile"):
        return FormatInfo(VHDX)
    if head.startswith(b"conectix"):  # dynamic VHD: a copy of the footer leads the file
        size = struct.unpack(">Q", head[48:56])[0] if len(head) >= 56 else None
        differencing = head[60:64] == struct.pack(">I", 4)  # a parent's locators follow
        return FormatInfo(VHD, size, differencing)
    for bad, name in ((b"LUKS\xba\xbe", "LUKS"), (b"VMDK", "VMware COWD")):
        if head.startswith(bad):
            raise UnsupportedFormat(f"{name} disk images are not supported")
    if len(head) >= 0x8006 and head[0x8001:0x8006] == b"CD001":
        return FormatInfo(ISO)
    return FormatInfo(RAW)


def qemu_format(fmt: str) -> str:
    """The qemu-img driver that reads a disk of the detected format ``fmt``."""
    return RAW if fmt in RAW_DATA_FORMATS else fmt


def _limits(
    address_space: int, cpu_seconds: int, then: Callable[[], None] | None = None
) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
        if then is not None:
            then()

    return apply


def _run(
    args: list[str],
    limits: dict[str, int],
    what: str,
    *,
    read: tuple[str | Path, ...] = (),
    write: tuple[str | Path, ...] = (),
) -> str:
    """Run qemu-img under ``limits``, able to read ``read`` and write ``write`` only."""
    ruleset, enforce = sandbox.restrict_child(read, write)
    try:
        with ruleset:
            proc = subprocess.run(
                args,
                capture_output=True,
                text=True,
                check=False,
                preexec_fn=_limits(**limits, then=enforce),
                env={**os.environ, "LC_ALL": "C"},
            )
    except FileNotFoundError as exc:
        raise ConversionFailed("qemu-img is not installed in this image") from exc
    if proc.returncode != 0:
        raise ConversionFailed(f"{what} failed: {proc.stderr.strip()[:500]}")
    return proc.stdout


def image_spec(path: str | Path, fmt: str) -> str:
    """A qemu ``json:`` filename: driver ``fmt`` over the plain file ``path``, no backing.

    Naming the protocol driver keeps a path from being read as ``nbd:``, ``json:`` and
    the like; ``"backing": null`` keeps qemu from opening a backing file even if a
    check let one through.
    """
    spec = {"driver": fmt, "file": {"driver": "file", "filename": str(path)}, "backing": None}
    return "json:" + json.dumps(spec)


def _refuse_references(info: dict, path: str | Path, fmt: str) -> None:
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise BackingFileRefused(
            f"the {fmt} image names a backing file ({info.get('backing-filename')!r}); "
            "flatten it with `qemu-img convert` before publishing"
        )
    specific = (info.get("format-specific") or {}).get("data") or {}
    if specific.get("data-file"):
        raise ExternalFileRefused(
            f"the {fmt} image keeps its data in the external file {specific['data-file']!r}; "
            "convert it to a self-contained image before publishing"
        )
    if fmt == VMDK:
        create_type = specific.get("create-type")
        extents = specific.get("extents") or []
        names = [str(e.get("filename")) for e in extents]
        if create_type not in VMDK_SELF_CONTAINED or names != [str(path)]:
            raise ExternalFileRefused(
                f"the vmdk image is of createType {create_type!r} with the extents {names}; "
                f"only {' and '.join(VMDK_SELF_CONTAINED)} images with one extent, the file "
                "itself, are accepted"
            )


def qemu_img_info(path: str | Path, fmt: str) -> dict:
    """``qemu-img info`` as JSON, under limits, refusing images that name other files."""
    out = _run(
        ["qemu-img", "info", "--output=json", image_spec(path, fmt)],
        INFO_LIMITS,
        "qemu-img info",
        read=(path,),
    )
    info = json.loads(out)
    _refuse_references(info, path, fmt)
    return info


def qemu_img_convert(
    source: str | Path,
    source_format: str,
    target: str | Path,
    target_format: str,
    *,
    target_exists: bool = False,
    target_is_zero: bool = False,
) -> None:
    """Convert ``source`` to ``target`` sparsely (``-S 4k``).

    ``target_exists``: write into the existing image or device (``-n``), which reads
    zeros already when ``target_is_zero``. Otherwise the file is created here, empty,
    so the sandbox can name it, and qemu-img gives it the source's size.
    """
    if not target_exists:
        Path(target).open("wb").close()
    args = ["qemu-img", "convert", "-q", "-t", "writeback", "-O", target_format, "-S", "4k"]
    if target_exists:
        args.append("-n")
        if target_is_zero:
            args.append("--target-is-zero")
    args += [image_spec(source, source_format), str(target)]
    what = f"qemu-img convert {source_format} -> {target_format}"
    _run(args, CONVERT_LIMITS, what, read=(source,), write=(target,))


def qemu_img_create(path: str | Path, fmt: str, size: int) -> None:
    """Create an empty image of ``fmt`` and virtual ``size`` bytes at ``path``."""
    Path(path).open("wb").close()
    args = ["qemu-img", "create", "-q", "-f", fmt, str(path), str(size)]
    _run(args, INFO_LIMITS, f"qemu-img create {fmt}", write=(path,))
