from __future__ import annotations

import errno
import io
import os

import pytest

from vmdiskimage import writer
from vmdiskimage.errors import DiskTooLarge, TargetTooSmall

pytestmark = pytest.mark.unit
MiB = 1 << 20


def _disk(layout: list[tuple[int, bytes]], size: int) -> bytes:
    data = bytearray(size)
    for offset, chunk in layout:
        data[offset : offset + len(chunk)] = chunk
    return bytes(data)


@pytest.mark.parametrize(
    "layout",
    [
        [],
        [(0, b"\x01")],
        [(5 * MiB + 3, os.urandom(70_000))],
        [(0, os.urandom(MiB)), (9 * MiB, os.urandom(4096)), (12 * MiB - 1, b"\x02")],
    ],
)
@pytest.mark.parametrize("direct_io", [True, False])
def test_sparse_copy_round_trips(tmp_path, layout, direct_io):
    size = 12 * MiB
    data = _disk(layout, size)
    target = tmp_path / "disk.img"
    target.write_bytes(b"\xff" * 20 * MiB)  # stale bytes from an earlier attempt
    w = writer.DiskWriter(target, direct_io=direct_io)
    assert w.copy_from(io.BytesIO(data), chunk_size=4 * MiB) == size
    w.finish(16 * MiB)
    out = target.read_bytes()
    assert out[:size] == data and out[size:] == bytes(4 * MiB)
    written = sum(len(c) for _, c in layout)
    # Only 64 KiB blocks holding data are written, so allocation follows the data.
    assert w.bytes_written <= written + len(layout) * 2 * writer.BLOCK_SIZE
    assert os.stat(target).st_blocks * 512 <= w.bytes_written + 64 * 1024


@pytest.mark.parametrize("length", [0, 1, 63, 64, 65, 4096, 64 * 1024 + 7, 4 * MiB])
def test_is_zero_accepts_zeros(length):
    assert writer.is_zero(memoryview(bytearray(length)))
    assert writer.is_zero(memoryview(bytes(length)))  # read-only buffers too


@pytest.mark.parametrize(
    ("length", "nonzero_at"),
    [
        (1, 0),
        (64, 63),
        (65, 64),
        (129, 128),
        (4096, 100),
        (4 * MiB, 0),
        (4 * MiB, writer.ZERO_STRIDE - 1),
        (4 * MiB, writer.ZERO_STRIDE),
        (4 * MiB, 2 * MiB + 1),
        (4 * MiB, 4 * MiB - 1),
    ],
)
def test_is_zero_finds_any_nonzero_byte(length, nonzero_at):
    data = bytearray(length)
    data[nonzero_at] = 0x80
    assert not writer.is_zero(memoryview(data))
    assert not writer.is_zero(memoryview(bytes(data)))
    # A slice that excludes the byte is zero; one that starts at it is not.
    assert writer.is_zero(memoryview(data)[:nonzero_at])
    assert not writer.is_zero(memoryview(data)[nonzero_at:])


def test_limit_refuses_before_writing_past_it(tmp_path):
    w = writer.DiskWriter(tmp_path / "d", limit=5 * MiB)
    with pytest.raises(DiskTooLarge):
        w.copy_from(io.BytesIO(b"\x07" * (8 * MiB)), chunk_size=MiB)
    w.close()
    assert os.path.getsize(tmp_path / "d") <= 5 * MiB


def test_finish_refuses_to_shrink(tmp_path):
    w = writer.DiskWriter(tmp_path / "d")
    w.copy_from(io.BytesIO(b"\x01" * MiB))
    with pytest.raises(TargetTooSmall):
        w.finish(MiB - 512)


def test_write_errors_from_the_writer_thread_surface(tmp_path, monkeypatch):
    w = writer.DiskWriter(tmp_path / "d")

    def broken(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(w, "_pwrite_fd", broken)
    with pytest.raises(writer.TargetError, match="No space left"):
        w.copy_from(io.BytesIO(b"\x01" * (8 * MiB)))
    w.close()


def test_aligned_buffers():
    buf, start = writer.aligned_buffer(MiB)
    assert writer.address(memoryview(buf)[start:]) % writer.DIRECT_ALIGNMENT == 0
    assert len(buf) - start >= MiB


@pytest.mark.parametrize(
    ("err", "reason", "fragment"),
    [
        pytest.param(errno.ENOSPC, "TargetFull", "volume is full", id="enospc"),
        pytest.param(errno.EDQUOT, "TargetFull", "volume is full", id="quota"),
        pytest.param(errno.EIO, "TargetWriteFailed", "failed", id="eio"),
    ],
)
def test_write_errors_name_a_full_volume(err, reason, fragment):
    error = writer.write_error("writing /target/disk.img at 0", OSError(err, os.strerror(err)))
    assert error.reason == reason
    assert fragment in str(error)


@pytest.mark.parametrize(
    ("err", "block", "reason", "fragment"),
    [
        pytest.param(
            errno.EACCES, True, "TargetNotWritable", "device_ownership_from_security_context",
            id="block-eacces",
        ),
        pytest.param(errno.EROFS, False, "TargetNotWritable", "Read-only", id="file-erofs"),
        pytest.param(errno.ENOENT, True, "TargetWriteFailed", "No such file", id="missing"),
    ],
)  # fmt: skip
def test_open_errors_name_what_the_node_must_change(err, block, reason, fragment):
    error = writer.open_error("/dev/vmdisk", OSError(err, os.strerror(err)), block=block)
    assert error.reason == reason
    assert fragment in str(error)
