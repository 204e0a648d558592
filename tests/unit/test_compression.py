from __future__ import annotations

import gzip
import io
import lzma
import os
import resource
import struct
import zlib

import pytest
import zstandard

from vmdiskimage import compression, streams
from vmdiskimage.errors import CorruptData

pytestmark = pytest.mark.unit

PAYLOAD = os.urandom(300_000) + bytes(2_000_000) + b"end"
ENCODERS = {
    "none": lambda d: d,
    "gzip": lambda d: gzip.compress(d),
    "zstd": lambda d: zstandard.ZstdCompressor(write_checksum=True).compress(d),
    "xz": lambda d: lzma.compress(d),
}


def _read_all(stream, size=65536) -> bytes:
    out, buf = [], bytearray(size)
    while n := stream.readinto(buf):
        out.append(bytes(buf[:n]))
    return b"".join(out)


@pytest.mark.parametrize("name", list(ENCODERS))
def test_round_trip_and_magic(name):
    blob = ENCODERS[name](PAYLOAD)
    assert compression.detect_magic(blob[:8]) == name
    assert _read_all(compression.open_decompressed(io.BytesIO(blob), name)) == PAYLOAD


def test_multi_member_gzip_and_multi_frame_zstd():
    gz = gzip.compress(b"one") + gzip.compress(b"two")
    assert _read_all(compression.open_decompressed(io.BytesIO(gz), "gzip")) == b"onetwo"
    z = zstandard.ZstdCompressor()
    zs = z.compress(b"one") + z.compress(b"two")
    assert _read_all(compression.open_decompressed(io.BytesIO(zs), "zstd")) == b"onetwo"


@pytest.mark.parametrize(
    ("media_type", "expected"),
    [
        ("application/vnd.oci.image.layer.v1.tar+gzip", "gzip"),
        ("application/vnd.docker.image.rootfs.diff.tar.gzip", "gzip"),
        ("application/vnd.oci.image.layer.v1.tar+zstd", "zstd"),
        ("application/vnd.kubevirt.disk.raw+xz", "xz"),
        ("application/vnd.oci.image.layer.v1.tar", None),
    ],
)
def test_from_media_type(media_type, expected):
    assert compression.from_media_type(media_type) == expected


@pytest.mark.parametrize("name", ["gzip", "zstd", "xz"])
def test_corrupt_streams_raise_corrupt_data(name):
    blob = bytearray(ENCODERS[name](PAYLOAD))
    blob[len(blob) // 2 : len(blob) // 2 + 64] = bytes(64)
    with pytest.raises(CorruptData, match=name):
        _read_all(compression.open_decompressed(io.BytesIO(bytes(blob)), name))


@pytest.mark.parametrize("name", ["gzip", "zstd"])
def test_output_is_bounded_by_the_callers_buffer(name):
    """A 256 MiB zero bomb is read 1 MiB at a time without the process growing."""
    if name == "gzip":
        blob = gzip.compress(bytes(256 << 20), compresslevel=9)
    else:
        blob = zstandard.ZstdCompressor(level=19).compress(bytes(256 << 20))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stream = compression.open_decompressed(io.BytesIO(blob), name)
    buf = bytearray(1 << 20)
    assert stream.readinto(buf) == len(buf)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 64 * 1024


@pytest.fixture(params=["zlib-ng", "wheel"])
def gunzip(request, monkeypatch):
    """open_decompressed(..., "gzip") with zlib-ng's stream API through ctypes (input
    read in place) and with the wheel's own reader, its fallback; both read gzip alike."""
    if request.param == "wheel":
        monkeypatch.setattr(compression, "_zng", None)
    else:
        assert compression._zng is not None, "the zlib-ng wheel exports its inflate"
    return lambda raw: compression.open_decompressed(raw, "gzip")


def test_gzip_skips_zero_padding_after_members(gunzip):
    blob = gzip.compress(b"one") + bytes(1000) + gzip.compress(PAYLOAD) + bytes(3)
    assert _read_all(gunzip(io.BytesIO(blob))) == b"one" + PAYLOAD


def test_gzip_reads_members_across_chunks_of_a_read_ahead(gunzip):
    """The populator's gzip input: whole read-ahead chunks, the first one partly peeked."""
    blob = gzip.compress(PAYLOAD, compresslevel=1) + gzip.compress(b"tail")
    ahead = streams.ReadAhead(io.BytesIO(blob), chunk_size=4096)
    try:
        assert ahead.peek(10) == blob[:10]
        assert _read_all(gunzip(ahead), size=1 << 20) == PAYLOAD + b"tail"
    finally:
        ahead.close()


@pytest.mark.parametrize(
    ("blob", "why"),
    [
        (gzip.compress(PAYLOAD)[:-20], "end"),  # cut inside the deflate data
        (gzip.compress(PAYLOAD)[:-4], "end"),  # cut inside the trailer
        (gzip.compress(b"one") + b"garbage", ""),
        (bytes(64) + gzip.compress(b"one"), ""),  # padding only between members
        (gzip.compress(b"one")[:-8] + b"\0\0\0\0" + gzip.compress(b"one")[-4:], ""),  # CRC
    ],
    ids=["cut-in-data", "cut-in-trailer", "garbage-after", "zeros-before", "bad-crc"],
)
def test_gzip_refuses_what_gzip_refuses(gunzip, blob, why):
    with pytest.raises(CorruptData, match=f"gzip stream.*{why}"):
        _read_all(gunzip(io.BytesIO(blob)))


def test_gzip_of_nothing_is_empty(gunzip):
    assert _read_all(gunzip(io.BytesIO(b""))) == b""


def _skippable(content: bytes, magic: int = 0x184D2A50) -> bytes:
    """A zstd skippable frame (RFC 8878 3.1.2) holding ``content``."""
    return struct.pack("<II", magic, len(content)) + content


ZSTD_FRAME = zstandard.ZstdCompressor().compress(PAYLOAD)  # declares its content size
LZ4_MAGIC = struct.pack("<I", 0x184D2204)


@pytest.mark.parametrize(
    ("head", "name"),
    [
        (_skippable(b"meta") + ZSTD_FRAME, "zstd"),
        (_skippable(b"", 0x184D2A5F) + ZSTD_FRAME, "zstd"),
        (_skippable(b"a") + _skippable(b"bc", 0x184D2A57) + ZSTD_FRAME, "zstd"),
        # The frame runs past the sniffed head: nothing but zstd starts that way here.
        (_skippable(bytes(100)) + ZSTD_FRAME, "zstd"),
        (_skippable(b"meta")[:6], "zstd"),
        # LZ4 frames share the skippable magic: not zstd.
        (_skippable(b"meta") + LZ4_MAGIC + bytes(8), "none"),
        (struct.pack("<I", 0x184D2A60) + bytes(12), "none"),
    ],
)
def test_zstd_behind_skippable_frames_is_zstd(head, name):
    assert compression.detect_magic(head[:32]) == name


def test_zstd_behind_skippable_frames_decodes_and_declares_its_size():
    blob = _skippable(b"meta") + ZSTD_FRAME + _skippable(b"between") + ZSTD_FRAME
    stream = compression.open_decompressed(io.BytesIO(blob), "zstd")
    assert _read_all(stream) == PAYLOAD + PAYLOAD
    assert compression.zstd_content_size(blob[:32]) == len(PAYLOAD)
    assert compression.zstd_content_size(_skippable(bytes(100)) + ZSTD_FRAME) == len(PAYLOAD)
    assert compression.zstd_content_size((_skippable(bytes(100)) + ZSTD_FRAME)[:32]) is None


def _raw_deflate(data: bytes, window_bits: int = 12) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -window_bits)
    return packer.compress(data) + packer.flush()


@pytest.fixture(params=["libdeflate", "zlib"])
def inflater(request, monkeypatch):
    """inflate_raw_into with libdeflate (the wheel is a dependency) and with its fallback,
    as a function of (data, size) that returns the bytes made."""
    if request.param == "zlib":
        monkeypatch.setattr(compression, "_libdeflate", None)
    else:
        assert compression._libdeflate is not None, "the deflate wheel is a dependency"
    expected = "libdeflate" if request.param == "libdeflate" else compression.gzip_backend()
    assert compression.inflate_backend() == expected

    def inflate(data, size, **options):
        out = bytearray(b"\xaa" * (size + 16))  # what follows ``size`` must stay untouched
        made = compression.inflate_raw_into(data, memoryview(out)[:size], **options)
        assert out[size:] == b"\xaa" * 16
        return bytes(out[:made])

    return inflate


def test_inflate_raw_ignores_what_follows_the_stream(inflater):
    data = os.urandom(1000) + bytes(64 << 10)
    # qemu rounds a compressed cluster up to a sector: the rest is whatever follows.
    padded = _raw_deflate(data) + b"\x55" * 300
    assert inflater(memoryview(padded), len(data), window_bits=12) == data


def test_inflate_raw_returns_a_short_stream_for_the_caller_to_check(inflater):
    assert inflater(_raw_deflate(b"x" * 100), 4096) == b"x" * 100


def test_inflate_raw_names_what_does_not_inflate(inflater):
    with pytest.raises(CorruptData, match="a compressed qcow2 cluster does not inflate"):
        inflater(b"\xff" * 64, 4096, what="a compressed qcow2 cluster")


def test_inflate_raw_never_returns_more_than_asked(inflater):
    longer = _raw_deflate(bytes(8192))
    if compression.inflate_backend() == "libdeflate":
        with pytest.raises(CorruptData, match="inflates to more than 4096 bytes"):
            inflater(longer, 4096)
    else:
        assert len(inflater(longer, 4096)) == 4096  # zlib stops there


def test_inflate_raw_reads_a_writable_source_where_it_lies(inflater):
    """The decoder's compressed runs are bytearrays: a cluster is a slice of one."""
    data = bytes(range(256)) * 64
    run = bytearray(b"\x00" * 7 + _raw_deflate(data) + b"\x55" * 9)
    assert inflater(memoryview(run)[7:], len(data)) == data


def test_inflate_raw_refuses_an_empty_stream(inflater):
    with pytest.raises(CorruptData, match="a cluster does not inflate"):
        inflater(b"", 4096, what="a cluster")
