# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""Sizing maths: Kubernetes quantities, virtual sizes and the PVC size a disk needs."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from .errors import InvalidArgument, TargetTooSmall

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

SECTOR = 512
#: PVC sizes are rounded up to this (most provisioners allocate whole MiB or more).
PVC_ALIGNMENT = MiB
#: Share of a Filesystem volume kept free for the filesystem itself: 5.5 %, the
#: default KubeVirt CDI uses (``filesystemOverhead.global``). ext4 and xfs metadata
#: plus reserved blocks on volumes of a few GiB stay below it.
DEFAULT_FILESYSTEM_OVERHEAD = 0.055

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY_RE = re.compile(r"^([+]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]{0,2})$")


def parse_quantity(value: str | int) -> int:
    """Bytes in a Kubernetes quantity (``20Gi``, ``1.5G``, ``1e9``, ``4096``), rounded up."""
    if isinstance(value, bool):
        raise InvalidArgument(f"{value!r} is not a size")
    if isinstance(value, int):
        if value < 0:
            raise InvalidArgument(f"size {value} is negative")
        return value
    text = str(value).strip()
    match = _QUANTITY_RE.match(text)
    if not match:
        raise InvalidArgument(f"{value!r} is not a Kubernetes quantity such as 20Gi or 10G")
    number, suffix = match.groups()
    if suffix and suffix not in _BINARY and suffix not in _DECIMAL:
        raise InvalidArgument(
            f"{value!r} has unknown suffix {suffix!r} (use Ki, Mi, Gi, Ti, Pi, Ei or k, M, G, T...)"
        )
    try:
        amount = Decimal(number) * (_BINARY.get(suffix) or _DECIMAL.get(suffix) or 1)
    except InvalidOperation as exc:
        raise InvalidArgument(f"{value!r} is not a Kubernetes quantity") from exc
    return math.ceil(amount)


def format_quantity(size: int) -> str:
    """The shortest exact binary quantity for ``size`` bytes (``21474836480`` -> ``20Gi``)."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def align_up(value: int, alignment: int) -> int:
    """Round ``value`` up to a multiple of ``alignment``."""
    return -(-value // alignment) * alignment


def requested_size(value: str | int | None) -> int | None:
    """Bytes a target size asks for (a quantity); None when none is asked for."""
    return None if value is None or value == "" else parse_quantity(value)


def container_file_limit(virtual_size: int) -> int:
    """The most bytes a disk container file (qcow2, vmdk, ...) of ``virtual_size`` may take:
    its data, an eighth more for tables and metadata, and 64 MiB. Bounds disk bombs."""
    return virtual_size + virtual_size // 8 + (64 << 20)


def target_virtual_size(image_virtual_size: int, requested: int | str | None = None) -> int:
    """The virtual size to give the disk: the request, never below the image, sector aligned."""
    size = align_up(image_virtual_size, SECTOR)
    wanted = requested_size(requested)
    if wanted is None:
        return size
    if wanted < image_virtual_size:
        raise TargetTooSmall(
            f"target size {format_quantity(wanted)} ({wanted} bytes) is smaller than the "
            f"image's virtual size {format_quantity(image_virtual_size)} "
            f"({image_virtual_size} bytes)",
            target_size=wanted,
            virtual_size=image_virtual_size,
        )
    return align_up(wanted, SECTOR)


def _check_overhead(overhead: float) -> float:
    if not 0 <= overhead < 1:
        raise InvalidArgument(f"filesystem overhead {overhead} must be in [0, 1)")
    return overhead


def filesystem_pvc_size(virtual_size: int, overhead: float = DEFAULT_FILESYSTEM_OVERHEAD) -> int:
    """The PVC request a Filesystem volume needs to hold a ``virtual_size`` disk.img."""
    overhead = _check_overhead(overhead)
    return align_up(math.ceil(Decimal(virtual_size) / (1 - Decimal(str(overhead)))), PVC_ALIGNMENT)


def block_pvc_size(virtual_size: int) -> int:
    """The PVC request a Block volume needs: the virtual size, MiB aligned."""
    return align_up(virtual_size, PVC_ALIGNMENT)


def pvc_size(
    virtual_size: int,
    volume_mode: str = "Filesystem",
    overhead: float = DEFAULT_FILESYSTEM_OVERHEAD,
) -> int:
    """The PVC request for a disk of ``virtual_size`` on a ``Filesystem`` or ``Block`` volume."""
    if volume_mode == "Block":
        return block_pvc_size(virtual_size)
    if volume_mode == "Filesystem":
        return filesystem_pvc_size(virtual_size, overhead)
    raise InvalidArgument(f"volume mode {volume_mode!r} must be Filesystem or Block")


def usable_disk_size(
    capacity: int, volume_mode: str = "Filesystem", overhead: float = DEFAULT_FILESYSTEM_OVERHEAD
) -> int:
    """The largest disk that fits a volume of ``capacity`` bytes (sector aligned down)."""
    if volume_mode == "Block":
        return capacity // SECTOR * SECTOR
    overhead = _check_overhead(overhead)
    return int(Decimal(capacity) * (1 - Decimal(str(overhead)))) // SECTOR * SECTOR
