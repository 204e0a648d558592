from __future__ import annotations

import io
import tarfile

import pytest

from vmdiskimage.errors import CorruptData
from vmdiskimage.tarwalk import TarEntry, TarReader, starts_a_tar

pytestmark = pytest.mark.unit


def _tar(entries, fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data, kind in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.size = len(data) if data is not None else 0
            if kind == tarfile.SYMTYPE:
                info.linkname = "/target/" + "l" * 120
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _walk(data: bytes, read_first: str | None = None):
    reader = TarReader(io.BytesIO(data))
    seen = []
    while (entry := reader.next()) is not None:
        content = None
        if entry.name == read_first:
            buf = bytearray(1 << 16)
            parts = []
            while n := reader.readinto(buf):
                parts.append(bytes(buf[:n]))
            content = b"".join(parts)
        seen.append((entry.name, entry.type, entry.size, entry.linkname, content))
    return seen


LONG = "disk/" + "d" * 150 + ".img"


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_names_sizes_and_data_across_tar_formats(fmt):
    long_name = LONG if fmt != tarfile.USTAR_FORMAT else "disk/" + "p" * 90 + "/x.img"
    entries = [
        ("disk", None, tarfile.DIRTYPE),
        (long_name, b"A" * 1000, tarfile.REGTYPE),
        ("disk/link", None, tarfile.SYMTYPE) if fmt != tarfile.USTAR_FORMAT else ("e", b"", b"0"),
        ("other", b"B" * 513, tarfile.REGTYPE),
    ]
    seen = _walk(_tar(entries, fmt), read_first=long_name)
    assert seen[1] == (long_name, b"0", 1000, "", b"A" * 1000)
    assert seen[0][:3] == ("disk/", b"5", 0)  # tarfile writes directories with a slash
    assert seen[-1][:3] == ("other", b"0", 513)
    if fmt != tarfile.USTAR_FORMAT:
        assert seen[2][3] == "/target/" + "l" * 120


def test_partial_read_then_next_skips_the_rest():
    data = _tar([("a", b"x" * 5000, b"0"), ("b", b"y" * 10, b"0")])
    reader = TarReader(io.BytesIO(data))
    assert reader.next().name == "a"  # type: ignore[union-attr]
    assert reader.readinto(bytearray(100)) == 100
    entry = reader.next()
    assert entry is not None and entry.name == "b"
    buf = bytearray(64)
    assert reader.readinto(buf) == 10 and bytes(buf[:10]) == b"y" * 10
    assert reader.next() is None


def test_missing_end_blocks_and_padding_are_tolerated():
    data = _tar([("a", b"x" * 6, b"0")])
    assert [e[0] for e in _walk(data[: 512 + 6])] == ["a"]  # umoci 0.4 writes this


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d[:300], "inside a tar header"),
        (lambda d: d[:100] + b"X" + d[101:], "checksum"),
        (lambda d: b"\x01" * 512, "bad number"),
    ],
)
def test_corrupt_archives(mutate, match):
    data = mutate(_tar([("a", b"x" * 2000, b"0"), ("b", b"y", b"0")]))
    with pytest.raises(CorruptData, match=match):
        _walk(data)


def test_truncated_data():
    data = _tar([("a", b"x" * 2000, b"0")])[:1024]
    reader = TarReader(io.BytesIO(data))
    reader.next()
    with pytest.raises(CorruptData, match="ends inside the disk file"):
        while reader.readinto(bytearray(4096)):
            pass


def test_gnu_base256_size():
    header = bytearray(_tar([("big", b"", b"0")], tarfile.GNU_FORMAT)[:512])
    header[124:136] = b"\x80" + (9 << 30).to_bytes(11, "big")  # 9 GiB: too big for octal
    header[148:156] = b"        "
    header[148:156] = f"{sum(header):06o}\0 ".encode()
    entry = TarReader(io.BytesIO(bytes(header))).next()
    assert entry is not None and entry.size == 9 << 30


@pytest.mark.parametrize(
    ("entry", "parts", "kind"),
    [
        (TarEntry("./disk//disk.img", b"0", 1), ["disk", "disk.img"], "regular file"),
        (TarEntry("disk/../x", b"2", 0, "/etc"), ["disk", "..", "x"], "symbolic link"),
        (TarEntry("disk/s", b"0", 1, sparse=True), ["disk", "s"], "sparse tar entry"),
        (TarEntry("disk/d", b"S", 1, sparse=True), ["disk", "d"], "sparse tar entry"),
        (TarEntry("disk/c", b"3", 0), ["disk", "c"], "character device"),
        (TarEntry("disk/z", b"Z", 0), ["disk", "z"], "tar type b'Z'"),
    ],
)
def test_entry_parts_and_kind(entry, parts, kind):
    assert entry.parts == parts
    assert entry.kind == kind


def _bad_checksum(data: bytes) -> bytes:
    return data[:148] + b"0000000\0" + data[156:]


def _v7(data: bytes) -> bytes:
    """The header without the ustar magic and version (a 1979 tar), checksum made right."""
    block = bytearray(data[:512])
    block[257:265] = bytes(8)
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


@pytest.mark.parametrize(
    ("head", "is_tar"),
    [
        (_tar([("disk/disk.img", b"x" * 600, tarfile.REGTYPE)], tarfile.PAX_FORMAT), True),
        (_tar([("disk/disk.img", b"x", tarfile.REGTYPE)], tarfile.GNU_FORMAT), True),
        (_tar([("disk", None, tarfile.DIRTYPE)], tarfile.USTAR_FORMAT), True),
        (_bad_checksum(_tar([("disk/disk.img", b"x", tarfile.REGTYPE)])), False),
        (_v7(_tar([("disk/disk.img", b"x", tarfile.REGTYPE)], tarfile.USTAR_FORMAT)), False),
        (bytes(1024), False),  # an empty archive, or a disk starting with zeros (ext4)
        (b"\xeb\x63\x90" + bytes(507) + b"\x55\xaa", False),  # a boot sector
        (b"QFI\xfb" + bytes(508), False),  # a qcow2 header
        (bytes(257) + b"ustar\x00" + bytes(250), False),  # the magic alone
        (b"", False),
        (_tar([("disk", None, tarfile.DIRTYPE)])[:511], False),  # shorter than a header
    ],
    ids=["pax", "gnu", "ustar", "bad-checksum", "v7-no-magic", "zeros", "mbr", "qcow2",
         "magic-only", "empty", "short"],
)  # fmt: skip
def test_starts_a_tar(head, is_tar):
    assert starts_a_tar(head) is is_tar
