# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What oci_image_info reports and how each value was learned, from a DiskInfo dict.

Pure functions over ``vmdiskimage.sources.DiskInfo.to_dict()`` so they are tested
without a registry; the names of the annotations are those of ``vmdiskimage.sources``.
"""

from __future__ import annotations

ANNOTATION_UNCOMPRESSED_SIZE = "vm.example.com/disk.uncompressed-size"
ANNOTATION_VIRTUAL_SIZE = "vm.example.com/disk.virtual-size"
HEADER_FORMATS = {"qcow2": "qcow2", "vmdk": "vmdk", "vpc": "VHD footer"}


def _size_source(info, disk_file_size):
    """Where a raw disk's size came from (the same rules as vmdiskimage.sources)."""
    annotations = (info.get("layer") or {}).get("annotations") or {}
    if info["kind"] == "containerDisk":
        return f"size of {info.get('disk_path') or 'the disk file'} in its tar header"
    if ANNOTATION_UNCOMPRESSED_SIZE in annotations:
        return f"layer annotation {ANNOTATION_UNCOMPRESSED_SIZE}"
    if info.get("compression") == "none":
        return "layer size in the manifest (the layer is the uncompressed disk)"
    if not disk_file_size and ANNOTATION_VIRTUAL_SIZE in annotations:
        return f"layer annotation {ANNOTATION_VIRTUAL_SIZE}"
    return None


def learned_from(info):
    """For each reported value, a sentence saying where it came from."""
    fmt = info.get("format")
    sources = {
        "digest": "sha256 of the manifest bytes the registry returned",
        "kind": "media types of the manifest's layers",
        "layer": "the manifest's layer descriptor",
        "compression": "magic bytes at the start of the layer blob (the media type is a label)",
        "format": "magic bytes of the disk's first 64 KiB (never the file name or media type)",
        "platforms": "the image index" if info.get("index_digest") else "not an index",
    }
    if info.get("virtual_size") is None:
        sources["virtual_size"] = "unknown without reading the whole disk"
    elif fmt in HEADER_FORMATS:
        sources["virtual_size"] = f"{HEADER_FORMATS[fmt]} header in the disk's first bytes"
    else:
        sources["virtual_size"] = _size_source(info, info.get("disk_size")) or "unknown"
    if info.get("disk_size") is None:
        sources["disk_size"] = "unknown without reading the whole layer"
    else:
        sources["disk_size"] = _size_source(info, None) or "unknown"
    return sources


def result_from(info, platforms, chosen_platform):
    """The module result for a DiskInfo dict and the platforms of its index (if any)."""
    layer = info["layer"]
    return dict(
        changed=False,
        reference=info["reference"],
        digest=info["digest"],
        index_digest=info.get("index_digest"),
        platform=chosen_platform if info.get("index_digest") else None,
        platforms=platforms,
        kind=info["kind"],
        layer=dict(
            digest=layer["digest"],
            size=layer["size"],
            media_type=layer["mediaType"],
            annotations=layer.get("annotations") or {},
        ),
        compression=info["compression"],
        format=info["format"],
        virtual_size=info.get("virtual_size"),
        disk_size=info.get("disk_size"),
        disk_path=info.get("disk_path"),
        has_backing_file=bool(info.get("has_backing_file")),
        learned_from=learned_from(info),
    )
