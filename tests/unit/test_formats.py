from __future__ import annotations

import struct

import pytest

from vmdiskimage import formats
from vmdiskimage.errors import CorruptData, UnsupportedFormat

pytestmark = pytest.mark.unit


def qcow2_header(size: int, backing_offset: int = 0, version: int = 3) -> bytes:
    return b"QFI\xfb" + struct.pack(">IQIIQ", version, backing_offset, 0, 16, size) + bytes(200)


def vmdk_header(sectors: int) -> bytes:
    return b"KDMV" + struct.pack("<II", 1, 3) + struct.pack("<Q", sectors) + bytes(100)


def vhd_footer(size: int) -> bytes:
    return b"conectix" + bytes(40) + struct.pack(">Q", size) + bytes(456)


@pytest.mark.parametrize(
    ("head", "fmt", "virtual", "backing"),
    [
        (qcow2_header(10 << 30), "qcow2", 10 << 30, False),
        (qcow2_header(1 << 20, backing_offset=512), "qcow2", 1 << 20, True),
        (vmdk_header(2048), "vmdk", 1 << 20, False),
        (b'# Disk DescriptorFile\nparentFileNameHint="base.vmdk"\n', "vmdk", None, True),
        (b"vhdxfile" + bytes(100), "vhdx", None, False),
        (vhd_footer(5 << 20), "vpc", 5 << 20, False),
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
