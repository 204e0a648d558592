# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What oci_image_info reports and how each value was learned, from a DiskInfo dict.

Pure functions over ``vmdiskimage.sources.DiskInfo.to_dict()`` so they are tested
without a registry. Where the sizes were read is the package's word
(``DiskInfo.sizes_from``), not worked out again here.
"""

from __future__ import annotations


def learned_from(info):
    """For each reported value, a sentence saying where it came from."""
    sizes_from = info.get("sizes_from") or {}
    return {
        "digest": "sha256 of the manifest bytes the registry returned",
        "kind": (
            "media types of the manifest's config and layers (and the first bytes of a file "
            "pushed by oras: a tar or a disk)"
        ),
        "layer": "the manifest's layer descriptor",
        "compression": "magic bytes at the start of the layer blob (the media type is a label)",
        "format": "magic bytes of the disk's first 64 KiB (never the file name or media type)",
        "platforms": "the image index" if info.get("index_digest") else "not an index",
        "virtual_size": sizes_from.get("virtual_size", "unknown without reading the whole disk"),
        "disk_size": sizes_from.get("disk_size", "unknown without reading the whole layer"),
    }


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
        disk_name=info.get("disk_name"),
        has_backing_file=bool(info.get("has_backing_file")),
        learned_from=learned_from(info),
    )
