"""The qcow2 header checks and the streaming decoder on hand-built images (no qemu)."""

from __future__ import annotations

import io
import struct
import threading
import zlib

import pytest
import zstandard

from vmdiskimage import errors, qcow2
from vmdiskimage.writer import DiskWriter

pytestmark = pytest.mark.unit

KiB = 1 << 10
MiB = 1 << 20
CS = 4 * KiB  # cluster size of the hand-built images
L2_SPAN = CS // 8 * CS  # guest bytes one L2 table maps


def _header(
    *,
    version: int = 3,
    cluster_bits: int = 12,
    size: int = 4 * MiB,
    l1_size: int = 2,
    l1_offset: int = CS,
    backing: int = 0,
    crypt: int = 0,
    incompatible: int = 0,
    compression_type: int | None = None,
) -> bytes:
    head = struct.pack(
        ">4sIQIIQIIQQIIQ",
        b"QFI\xfb",
        version,
        backing,
        0,
        cluster_bits,
        size,
        crypt,
        l1_size,
        l1_offset,
        0,
        0,
        0,
        0,
    )
    if version == 3:
        length = 104 if compression_type is None else 112
        head += struct.pack(">QQQII", incompatible, 0, 0, 4, length)
        if compression_type is not None:
            head += bytes([compression_type]) + bytes(7)
    return head + bytes(8)  # end of the header extensions


def _image(
    data: dict[int, bytes],
    *,
    layout: list[str],
    compressed: str | None = None,
    size: int = 4 * MiB,
) -> tuple[bytes, bytes]:
    """A qcow2 file holding ``data`` (guest offset -> one cluster), and its raw disk.

    ``layout`` orders what follows the header and the L1 table in the file: "l2" for the
    L2 tables, "data" for the clusters ("data-reversed": the last guest cluster first), "gap"
    for a 2 MiB run of unused bytes.
    """
    l1_size = -(-size // L2_SPAN)
    out = bytearray(CS)  # header cluster, filled in at the end
    l1_at = len(out)
    out += bytes(CS)
    tables: dict[int, int] = {}
    l2_entries: dict[int, dict[int, int]] = {}
    raw = bytearray(size)
    cluster_at: dict[int, tuple[int, int]] = {}
    for part in layout:
        if part == "gap":
            out += bytes(2 * MiB)
        elif part == "l2":
            for guest in sorted(data):
                index = guest // L2_SPAN
                if index not in tables:
                    out += bytes(-len(out) % CS)
                    tables[index] = len(out)
                    out += bytes(CS)
        elif part in ("data", "data-reversed"):
            for guest, chunk in sorted(data.items(), reverse=part == "data-reversed"):
                raw[guest : guest + CS] = chunk
                if compressed == "zlib":
                    comp = zlib.compressobj(6, zlib.DEFLATED, -12)
                    blob = comp.compress(chunk) + comp.flush()
                elif compressed == "zstd":
                    blob = zstandard.ZstdCompressor().compress(chunk)
                else:
                    blob = chunk
                cluster_at[guest] = (len(out), len(blob))
                out += blob
    for guest, (host, length) in cluster_at.items():
        index, j = divmod(guest, L2_SPAN)
        if compressed:
            sectors = (host + length - 1) // 512 - host // 512
            entry = (1 << 62) | sectors << (62 - (12 - 8)) | host
        else:
            entry = (1 << 63) | host
        l2_entries.setdefault(index, {})[j // CS] = entry
    l1 = [(1 << 63) | tables[i] if i in tables else 0 for i in range(l1_size)]
    struct.pack_into(f">{l1_size}Q", out, l1_at, *l1)
    for index, table in tables.items():
        for j, entry in l2_entries.get(index, {}).items():
            struct.pack_into(">Q", out, table + 8 * j, entry)
    incompatible = 8 if compressed == "zstd" else 0
    head = _header(
        size=size,
        l1_size=l1_size,
        l1_offset=l1_at,
        incompatible=incompatible,
        compression_type=1 if compressed == "zstd" else None,
    )
    out[: len(head)] = head
    return bytes(out), bytes(raw)


def _decode(image: bytes, tmp_path, **kw) -> bytes:
    header = qcow2.parse_header(image[: 64 * KiB])
    target = tmp_path / "out.img"
    writer = DiskWriter(target, limit=header.size)
    try:
        qcow2.StreamDecoder(header, io.BytesIO(image), writer, file_size=len(image), **kw).run()
        writer.finish(header.size)
    finally:
        writer.close()
    return target.read_bytes()


DATA = {
    0: b"\x11" * CS,
    5 * CS: bytes(range(256)) * (CS // 256),
    3 * MiB + CS: b"\x22" * (CS // 2) + bytes(CS // 2),
}


@pytest.mark.parametrize("compressed", [None, "zlib", "zstd"])
@pytest.mark.parametrize(
    "layout", [["l2", "data"], ["l2", "gap", "data"], ["data", "l2"]], ids="-".join
)
def test_decoder_writes_the_raw_disk(tmp_path, compressed, layout):
    """Tables before their data, far before it, and just after it (inside the window)."""
    image, raw = _image(DATA, layout=layout, compressed=compressed)
    assert _decode(image, tmp_path) == raw


def test_data_further_behind_its_table_than_the_window_needs_scratch(tmp_path):
    image, _ = _image(DATA, layout=["data", "gap", "l2"])
    with pytest.raises(qcow2.NeedsScratch, match="follows the data by more than 1024 KiB"):
        _decode(image, tmp_path)


def test_too_many_waiting_stretches_need_scratch(tmp_path, monkeypatch):
    monkeypatch.setattr(qcow2, "MAX_PENDING", 2)
    monkeypatch.setattr(qcow2, "BUFFER_BYTES", 1)  # each compressed cluster waits alone
    image, _ = _image(DATA, layout=["l2", "data"], compressed="zlib")
    with pytest.raises(qcow2.NeedsScratch, match="more than 2 stretches"):
        _decode(image, tmp_path)


#: Compressed clusters back to back in the file: guest-contiguous stretches, a zero
#: cluster inside one, and guest gaps between them.
PACKED = {
    **{i * CS: bytes([i]) * (CS // 2) + bytes(range(256)) * (CS // 512) for i in range(1, 24)},
    24 * CS: bytes(CS),
    **{i * CS: bytes([i % 7]) * CS for i in range(25, 40)},
    **{3 * MiB + i * CS: bytes([i]) * 100 + bytes(CS - 100) for i in range(0, 9)},
}


@pytest.mark.parametrize("compressed", ["zlib", "zstd"])
@pytest.mark.parametrize(
    "run_bytes, run_output",
    [(512 * KiB, MiB), (600, MiB), (512 * KiB, 3 * CS), (1, 1)],
    ids=["one-run", "split-by-compressed-bytes", "split-by-clusters", "one-cluster-each"],
)
def test_runs_of_compressed_clusters_write_the_raw_disk(
    tmp_path, monkeypatch, compressed, run_bytes, run_output
):
    """However the back-to-back compressed clusters are cut into runs, the disk is the same."""
    monkeypatch.setattr(qcow2, "RUN_COMPRESSED_BYTES", run_bytes)
    monkeypatch.setattr(qcow2, "BUFFER_BYTES", run_output)
    for layout in (["l2", "data"], ["l2", "data-reversed"]):
        image, raw = _image(PACKED, layout=layout, compressed=compressed)
        assert _decode(image, tmp_path) == raw, layout
    allocated = (tmp_path / "out.img").stat().st_blocks * 512
    assert allocated < len(PACKED) * CS + 64 * KiB  # the zero cluster and the gaps stay holes


@pytest.mark.parametrize("run_output", [1, MiB], ids=["one-cluster-runs", "large-runs"])
def test_a_failed_write_of_compressed_clusters_stops_the_decoder(tmp_path, monkeypatch, run_output):
    """The writing thread's failure is raised, and nothing waits forever for its buffers."""
    monkeypatch.setattr(qcow2, "BUFFER_BYTES", run_output)
    image, _ = _image(PACKED, layout=["l2", "data"], compressed="zlib")
    header = qcow2.parse_header(image[: 64 * KiB])
    with DiskWriter(tmp_path / "out.img", limit=20 * CS) as writer:
        decoder = qcow2.StreamDecoder(header, io.BytesIO(image), writer, file_size=len(image))
        raised: list[BaseException] = []

        def decode() -> None:
            try:
                decoder.run()
            except BaseException as exc:
                raised.append(exc)

        thread = threading.Thread(target=decode, daemon=True)
        thread.start()
        thread.join(30)
        assert not thread.is_alive(), "the decoder hangs after a failed write"
    assert [type(exc) for exc in raised] == [errors.DiskTooLarge]


def test_the_whole_file_is_read(tmp_path):
    """Bytes after the last cluster are read too: the digest covers every byte."""
    image, _ = _image(DATA, layout=["l2", "data"])
    stream = io.BytesIO(image + bytes(3 * MiB))
    header = qcow2.parse_header(image)
    with DiskWriter(tmp_path / "out.img") as writer:
        qcow2.StreamDecoder(header, stream, writer).run()
    assert stream.tell() == len(image) + 3 * MiB


def test_file_longer_than_its_limit_is_refused(tmp_path):
    image, _ = _image(DATA, layout=["l2", "data"])
    header = qcow2.parse_header(image)
    with DiskWriter(tmp_path / "out.img") as writer, pytest.raises(errors.DiskTooLarge):
        decoder = qcow2.StreamDecoder(
            header, io.BytesIO(image + bytes(MiB)), writer, limit=len(image)
        )
        decoder.run()


def test_valid_headers():
    v2 = qcow2.parse_header(_header(version=2))
    assert (v2.version, v2.cluster_size, v2.compression, v2.l1_needed) == (2, CS, "zlib", 2)
    zstd = qcow2.parse_header(_header(incompatible=8, compression_type=1))
    assert zstd.compression == "zstd"
    dirty = qcow2.parse_header(_header(incompatible=1))
    assert dirty.version == 3


HEADERS = {
    "not-qcow2": (b"QFI\xfa" + bytes(200), errors.CorruptData, "not a qcow2 header"),
    "version-4": (_header(version=4), errors.UnsupportedFormat, "version 4"),
    "backing-file": (_header(backing=512), errors.BackingFileRefused, "backing file"),
    "cluster-bits-8": (_header(cluster_bits=8), errors.CorruptData, "cluster_bits 8"),
    "cluster-bits-22": (_header(cluster_bits=22), errors.CorruptData, "cluster_bits 22"),
    "aes": (_header(crypt=1), errors.UnsupportedFormat, "encrypted"),
    "luks": (_header(crypt=2), errors.UnsupportedFormat, "encrypted"),
    "data-file": (_header(incompatible=4), errors.ExternalFileRefused, "external data file"),
    "extended-l2": (_header(incompatible=16), errors.UnsupportedFormat, "extended L2"),
    "marked-corrupt": (_header(incompatible=2), errors.CorruptData, "marked corrupt"),
    "unknown-bits": (_header(incompatible=1 << 40 | 32), errors.UnsupportedFormat, "bits 5, 40"),
    "zstd-without-bit-3": (_header(compression_type=1), errors.CorruptData, "disagrees"),
    "bit-3-without-type": (_header(incompatible=8), errors.CorruptData, "disagrees"),
    "compression-type-2": (
        _header(incompatible=8, compression_type=2),
        errors.UnsupportedFormat,
        "compression type 2",
    ),
    "l1-too-small": (_header(l1_size=1), errors.CorruptData, "too small"),
    "l1-too-large": (_header(l1_size=5 << 20), errors.CorruptData, "larger than qemu allows"),
    "l1-unaligned": (_header(l1_offset=CS + 512), errors.CorruptData, "not cluster aligned"),
    "l1-at-zero": (_header(l1_offset=0), errors.CorruptData, "not cluster aligned"),
}


@pytest.mark.parametrize("name", HEADERS)
def test_refused_headers(name):
    head, error, text = HEADERS[name]
    with pytest.raises(error, match=text):
        qcow2.parse_header(head)


def test_a_huge_l1_table_takes_the_scratch_path():
    # With 512-byte clusters one L1 entry maps 32 KiB: 64 GiB needs a 16 MiB table, within
    # qemu's cap, more than the decoder holds.
    header = qcow2.parse_header(_header(cluster_bits=9, size=64 << 30, l1_size=2 << 20))
    assert "16 MiB" in qcow2.stream_obstacle(header)
    assert qcow2.stream_obstacle(qcow2.parse_header(_header())) is None
