from __future__ import annotations

import struct

import pytest

from vmdiskimage import formats
from vmdiskimage.errors import CorruptData, UnsupportedFormat

pytestmark = pytest.mark.unit


def qcow2_header(
    size: int,
    backing_offset: int = 0,
    version: int = 3,
    incompatible: int = 0,
    extensions: bytes = b"",
) -> bytes:
    head = b"QFI\xfb" + struct.pack(">IQIIQ", version, backing_offset, 0, 16, size)
    if version == 2:
        return head.ljust(72, b"\0") + extensions + bytes(8)
    head = head.ljust(72, b"\0") + struct.pack(">QQQII", incompatible, 0, 0, 4, 104)
    return head + extensions + bytes(8)


def qcow2_extension(kind: int, data: bytes) -> bytes:
    return struct.pack(">II", kind, len(data)) + data + bytes(-len(data) % 8)


def vmdk_header(sectors: int, descriptor: bytes = b"") -> bytes:
    header = b"KDMV" + struct.pack("<IIQQQQIQQQ", 1, 3, sectors, 128, 1, 20, 512, 0, 0, 0)
    return header.ljust(512, b"\0") + descriptor.ljust(20 * 512, b"\0")


def vhd_footer(size: int, disk_type: int = 3) -> bytes:
    footer = b"conectix" + bytes(40) + struct.pack(">QI", size, 0) + struct.pack(">I", disk_type)
    return footer.ljust(512, b"\0")


SPARSE_DESCRIPTOR = b'createType="monolithicSparse"\nRW 2048 SPARSE "disk.vmdk"\n'
FLAT_DESCRIPTOR = b'createType="monolithicFlat"\nRW 2048 FLAT "/etc/passwd" 0\n'


@pytest.mark.parametrize(
    ("head", "named"),
    [
        (qcow2_header(1 << 20), None),
        (qcow2_header(1 << 20, version=2, extensions=qcow2_extension(0xE2792ACA, b"raw")), None),
        (qcow2_header(1 << 20, incompatible=4), "incompatible feature bit 2"),
        (
            qcow2_header(1 << 20, extensions=qcow2_extension(0x44415441, b"/run/secret")),
            "'/run/secret'",
        ),
        (vmdk_header(2048, SPARSE_DESCRIPTOR), None),
        (vmdk_header(2048, FLAT_DESCRIPTOR), "monolithicFlat"),
        (vmdk_header(0, FLAT_DESCRIPTOR), "capacity of 0"),
        (b"# Disk DescriptorFile\n" + FLAT_DESCRIPTOR, "'/etc/passwd'"),
        (b'# Disk DescriptorFile\ncreateType="vmfs"\nRW 8 VMFS "x-flat.vmdk"\n', "vmfs"),
    ],
    ids=[
        "qcow2",
        "qcow2-v2-extension",
        "qcow2-bit2",
        "qcow2-data-file-extension",
        "vmdk-sparse",
        "vmdk-embedded-flat",
        "vmdk-capacity-0",
        "vmdk-descriptor-flat",
        "vmdk-descriptor-vmfs",
    ],
)
def test_detect_names_external_files(head, named):
    external = formats.detect(head).external_file
    if named is None:
        assert external is None
    else:
        assert named in external


@pytest.mark.parametrize(
    ("head", "fmt", "virtual", "backing"),
    [
        (qcow2_header(10 << 30), "qcow2", 10 << 30, False),
        (qcow2_header(1 << 20, backing_offset=512), "qcow2", 1 << 20, True),
        (vmdk_header(2048), "vmdk", 1 << 20, False),
        (b'# Disk DescriptorFile\nparentFileNameHint="base.vmdk"\n', "vmdk", None, True),
        (b"vhdxfile" + bytes(100), "vhdx", None, False),
        (vhd_footer(5 << 20), "vpc", 5 << 20, False),
        (vhd_footer(5 << 20, disk_type=4), "vpc", 5 << 20, True),  # differencing
        (bytes(0x8001) + b"CD001" + bytes(10), "iso", None, False),
        (bytes(4096), "raw", None, False),
        (b"\xeb\x63\x90" + bytes(509), "raw", None, False),  # an MBR boot sector
        (b"", "raw", None, False),
    ],
)
def test_detect(head, fmt, virtual, backing):
    info = formats.detect(head)
    assert (info.format, info.virtual_size, info.has_backing_file) == (fmt, virtual, backing)


def test_detect_refuses():
    with pytest.raises(UnsupportedFormat):
        formats.detect(qcow2_header(1, version=1))
    with pytest.raises(UnsupportedFormat, match="LUKS"):
        formats.detect(b"LUKS\xba\xbe" + bytes(100))
    with pytest.raises(CorruptData):
        formats.detect(b"QFI\xfb\x00\x00")


@pytest.mark.parametrize(
    ("detected", "driver"),
    [("raw", "raw"), ("iso", "raw"), ("qcow2", "qcow2"), ("vmdk", "vmdk"), ("vpc", "vpc")],
)
def test_qemu_reads_an_iso_as_raw_data(detected, driver):
    assert formats.qemu_format(detected) == driver
