"""Where a disk's sizes are read: the containerDisk tar header, a disk header, annotations."""

from __future__ import annotations

import pytest
import zstandard

from vmdiskimage import formats, sources
from vmdiskimage.errors import UnsupportedManifest
from vmdiskimage.oci import (
    ANNOTATION_KUBEVIRT_DISK_SIZE,
    ANNOTATION_UNCOMPRESSED_SIZE,
    ANNOTATION_VIRTUAL_SIZE,
    Descriptor,
)

pytestmark = pytest.mark.unit

RAW = formats.FormatInfo(formats.RAW)
QCOW2 = formats.FormatInfo(formats.QCOW2, 50)
VHD = formats.FormatInfo(formats.VHD, 60)
VHDX = formats.FormatInfo(formats.VHDX)
ISO = formats.FormatInfo(formats.ISO)
ZSTD_HEAD = zstandard.ZstdCompressor(write_content_size=True).compress(b"\0" * 70)[:32]


def _layer(annotations=None) -> Descriptor:
    return Descriptor("m", "sha256:" + "0" * 64, 10, annotations=annotations or {})


@pytest.mark.parametrize(
    ("detected", "virtual", "where"),
    [
        (RAW, 5, "size of disk/d.img in its tar header"),
        (ISO, 5, "size of disk/d.img in its tar header"),  # raw data: the file is the disk
        (QCOW2, 50, "qcow2 header in the disk's first bytes"),
        (VHD, 60, "VHD footer in the disk's first bytes"),
        (VHDX, None, None),
    ],
)
def test_container_disk_sizes(detected, virtual, where):
    size, file_size = sources.container_disk_sizes(5, "disk/d.img", detected)
    assert size == (virtual, where)
    assert file_size == (5, "size of disk/d.img in its tar header")


@pytest.mark.parametrize(
    ("annotations", "comp", "detected", "head", "file_size", "virtual"),
    [
        pytest.param(
            {ANNOTATION_UNCOMPRESSED_SIZE: "5"}, "zstd", RAW, b"",
            (5, f"layer annotation {ANNOTATION_UNCOMPRESSED_SIZE}"),
            (5, f"layer annotation {ANNOTATION_UNCOMPRESSED_SIZE}"),
            id="raw-annotated",
        ),
        pytest.param(
            {}, "none", RAW, b"",
            (10, "layer size in the manifest (the layer is the uncompressed disk)"),
            (10, "layer size in the manifest (the layer is the uncompressed disk)"),
            id="raw-uncompressed",
        ),
        pytest.param(
            {ANNOTATION_VIRTUAL_SIZE: "7"}, "gzip", RAW, b"",
            (None, None), (7, f"layer annotation {ANNOTATION_VIRTUAL_SIZE}"),
            id="raw-virtual-annotation",
        ),
        pytest.param(
            {}, "zstd", RAW, ZSTD_HEAD,
            (None, None), (70, "content size in the first zstd frame header of the layer"),
            id="raw-zstd-frame",
        ),
        pytest.param({}, "gzip", RAW, b"", (None, None), (None, None), id="raw-gzip-bare"),
        pytest.param(
            {ANNOTATION_KUBEVIRT_DISK_SIZE: "4Mi"}, "zstd", RAW, ZSTD_HEAD,
            (4 << 20, f"layer annotation {ANNOTATION_KUBEVIRT_DISK_SIZE}"),
            (4 << 20, f"layer annotation {ANNOTATION_KUBEVIRT_DISK_SIZE}"),
            id="kubevirt-export-quantity",
        ),
        pytest.param(
            {ANNOTATION_KUBEVIRT_DISK_SIZE: "3000001"}, "zstd", RAW, b"",
            (3000001, f"layer annotation {ANNOTATION_KUBEVIRT_DISK_SIZE}"),
            (3000001, f"layer annotation {ANNOTATION_KUBEVIRT_DISK_SIZE}"),
            id="kubevirt-export-bytes",
        ),
        pytest.param(
            {ANNOTATION_UNCOMPRESSED_SIZE: "5", ANNOTATION_KUBEVIRT_DISK_SIZE: "4Mi"}, "zstd",
            RAW, b"",
            (5, f"layer annotation {ANNOTATION_UNCOMPRESSED_SIZE}"),
            (5, f"layer annotation {ANNOTATION_UNCOMPRESSED_SIZE}"),
            id="ours-before-kubevirt",
        ),
        pytest.param(
            {}, "none", ISO, b"",
            (10, "layer size in the manifest (the layer is the uncompressed disk)"),
            (10, "layer size in the manifest (the layer is the uncompressed disk)"),
            id="iso-uncompressed",
        ),
        pytest.param(
            {ANNOTATION_VIRTUAL_SIZE: "7"}, "gzip", ISO, b"",
            (None, None), (7, f"layer annotation {ANNOTATION_VIRTUAL_SIZE}"),
            id="iso-virtual-annotation",
        ),
        pytest.param(
            {ANNOTATION_VIRTUAL_SIZE: "7"}, "zstd", QCOW2, b"",
            (None, None), (50, "qcow2 header in the disk's first bytes"),
            id="qcow2-header-wins",
        ),
    ],
)  # fmt: skip
def test_artifact_sizes(annotations, comp, detected, head, file_size, virtual):
    layer = _layer(annotations)
    assert sources.artifact_file_size(layer, comp) == file_size
    assert sources.artifact_virtual_size(layer, comp, detected, file_size, head) == virtual


@pytest.mark.parametrize("value", ["lots", "-1Gi", "10 Gi", ""])
def test_a_kubevirt_size_that_is_no_quantity_is_refused(value):
    layer = _layer({ANNOTATION_KUBEVIRT_DISK_SIZE: value})
    with pytest.raises(UnsupportedManifest, match=f"{ANNOTATION_KUBEVIRT_DISK_SIZE}='{value}'"):
        sources.artifact_file_size(layer, "zstd")
