"""Disk format detection from bytes, and qemu-img for the formats that need it.

The format of a source is decided from its first bytes, never from a file name or
media type. qemu-img runs under an address-space and CPU-time limit, the way
KubeVirt CDI runs it, so a crafted image cannot take the pod down.
"""

from __future__ import annotations

import json
import os
import resource
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import BackingFileRefused, ConversionFailed, CorruptData, UnsupportedFormat

RAW = "raw"
QCOW2 = "qcow2"
VMDK = "vmdk"
VHD = "vpc"  # qemu-img's name for VHD
VHDX = "vhdx"
ISO = "iso"
TARGET_FORMATS = (RAW, QCOW2, VMDK)

#: Bytes of the disk needed to detect its format (the ISO signature is at 32 KiB).
DETECT_BYTES = 64 * 1024

# qemu-img limits: CDI uses 1 GiB of address space and 30 s of CPU for `info`.
INFO_LIMITS = {"address_space": 1 << 30, "cpu_seconds": 30}
CONVERT_LIMITS = {"address_space": 2 << 30, "cpu_seconds": 3600}


@dataclass(frozen=True)
class FormatInfo:
    """What the first bytes of a disk say."""

    format: str
    virtual_size: int | None = None  # None for raw (the data length is the size)
    has_backing_file: bool = False


def _qcow2(head: bytes) -> FormatInfo:
    if len(head) < 32:
        raise CorruptData("qcow2 header is truncated")
    version, backing_offset, _backing_len, _bits, size = struct.unpack(">IQIIQ", head[4:32])
    if version not in (2, 3):
        raise UnsupportedFormat(f"qcow2 version {version} is not supported")
    return FormatInfo(QCOW2, size, backing_offset != 0)


def _vmdk_sparse(head: bytes) -> FormatInfo:
    if len(head) < 20:
        raise CorruptData("vmdk header is truncated")
    capacity = struct.unpack("<Q", head[12:20])[0]
    # A descriptor embedded at descriptorOffset may name a parent: qemu-img checks later.
    return FormatInfo(VMDK, capacity * 512)


def _vmdk_descriptor(head: bytes) -> FormatInfo:
    text = head.decode("latin-1")
    has_parent = "parentFileNameHint" in text
    return FormatInfo(VMDK, None, has_parent)


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
        return FormatInfo(VHD, size)
    for bad, name in ((b"LUKS\xba\xbe", "LUKS"), (b"VMDK", "VMware COWD")):
        if head.startswith(bad):
            raise UnsupportedFormat(f"{name} disk images are not supported")
    if len(head) >= 0x8006 and head[0x8001:0x8006] == b"CD001":
        return FormatInfo(ISO)
    return FormatInfo(RAW)


def _limits(address_space: int, cpu_seconds: int):  # type: ignore[no-untyped-def]
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))

    return apply


def _run(args: list[str], limits: dict[str, int], what: str) -> str:
    try:
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=_limits(**limits),
            env={**os.environ, "LC_ALL": "C"},
        )
    except FileNotFoundError as exc:
        raise ConversionFailed("qemu-img is not installed in this image") from exc
    if proc.returncode != 0:
        raise ConversionFailed(f"{what} failed: {proc.stderr.strip()[:500]}")
    return proc.stdout


def qemu_img_info(path: str | Path, fmt: str) -> dict:
    """``qemu-img info`` as JSON, under limits, refusing images with a backing file."""
    out = _run(
        ["qemu-img", "info", "--output=json", "-f", fmt, str(path)], INFO_LIMITS, "qemu-img info"
    )
    info = json.loads(out)
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise BackingFileRefused(
            f"the {fmt} image names a backing file ({info.get('backing-filename')}); "
            "flatten it with `qemu-img convert` before publishing"
        )
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
    """Convert ``source`` to ``target`` sparsely (``-S 4k``); ``target_exists`` for devices."""
    args = ["qemu-img", "convert", "-q", "-t", "writeback"]
    args += ["-f", source_format, "-O", target_format, "-S", "4k"]
    if target_exists:
        args.append("-n")
        if target_is_zero:
            args.append("--target-is-zero")
    args += [str(source), str(target)]
    _run(args, CONVERT_LIMITS, f"qemu-img convert {source_format} -> {target_format}")


def qemu_img_resize(path: str | Path, fmt: str, size: int) -> None:
    """Grow an image file of format ``fmt`` to ``size`` bytes."""
    _run(["qemu-img", "resize", "-q", "-f", fmt, str(path), str(size)], INFO_LIMITS, "resize")


def qemu_img_create(path: str | Path, fmt: str, size: int) -> None:
    _run(["qemu-img", "create", "-q", "-f", fmt, str(path), str(size)], INFO_LIMITS, "create")
