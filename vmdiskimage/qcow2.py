# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""qcow2 decoded in one pass: the raw disk written to the target as the file streams by.

A qcow2 file is read front to back, once: the header, the active L1 table, then each L2
table and data cluster in the order they sit in the file. Every table read tells which
later stretches of the file hold what guest data; those wait in a heap ordered by file
offset until the stream reaches them. Data clusters go straight to the target at their
guest offset; zero and unallocated clusters stay holes; compressed clusters (deflate,
or zstd when the v3 header says so) are inflated by a small thread pool (zlib and
zstandard drop the GIL), so inflating spreads across cores while the caller's thread
keeps reading. Compressed clusters that sit back to back in the file travel as one run:
one read, one task, inflated into one aligned buffer and written with as few direct
writes as their guest offsets allow (per cluster, the task and write overhead cost as
much CPU as the copy, and buffered writes doubled the system time).

Images written by ``qemu-img convert`` keep every table in front of what it maps. One
that does not (a data cluster the stream has passed before the table that maps it: an
image with snapshots, a relocated L1 table) raises :class:`NeedsScratch`, and the
caller converts it through the scratch path instead. Memory stays bounded: what waits
in the heap, the buffers in flight and the tables held are all capped; an image that
needs more also takes the scratch path.

Refused, as the qemu-img path refuses them: backing files, external data files,
encryption, extended L2 entries, and incompatible feature bits this decoder does not
know. Snapshots and refcounts are never read: only the active L1 table maps the disk.
"""

from __future__ import annotations

import heapq
import os
import queue
import struct
import sys
import threading
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zstandard

from .compression import inflate_raw_into
from .errors import (
    BackingFileRefused,
    CorruptData,
    DiskTooLarge,
    ExternalFileRefused,
    UnsupportedFormat,
)
from .streams import drain, read_full
from .writer import DiskWriter, aligned_buffer

MAGIC = b"QFI\xfb"
MIN_CLUSTER_BITS = 9
MAX_CLUSTER_BITS = 21
#: qemu's own cap on the active L1 table (``QCOW_MAX_L1_SIZE``).
MAX_L1_BYTES = 32 << 20
#: The L1 entries this decoder holds at once; a larger table takes the scratch path.
MAX_L1_STREAM_BYTES = 4 << 20
#: Stretches of the file waiting for the stream to reach them.
MAX_PENDING = 1 << 16
#: Bytes behind the read position kept for tables that map data just before themselves
#: (at least two clusters).
LOOKBACK = 1 << 20
#: Bytes nothing maps yet are read in pieces of at most this size.
SKIP_PIECE = 1 << 20
#: Plain data is read into, and compressed runs inflate into, aligned buffers of this
#: size (one cluster when clusters are larger), each written with as few direct writes
#: as the guest offsets allow. Fewer, larger tasks mean fewer hand-offs between threads:
#: with 512 KiB the same import took 10% more CPU.
BUFFER_BYTES = 2 << 20
#: Compressed clusters that sit back to back in the file go to the inflating threads
#: together, as one run of at most this many compressed bytes (and one buffer inflated).
RUN_COMPRESSED_BYTES = 1 << 20
#: Buffers in flight (read, being inflated or written) beyond one per thread.
SPARE_RUNS = 1
#: Threads beyond one per core, so cores keep inflating while threads wait for their
#: direct writes to reach the volume.
WRITING_THREADS = 2
#: zstd window the decoder accepts (qemu compresses one cluster, 2 MiB at most, per frame).
ZSTD_MAX_WINDOW = 8 << 20

INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
_KNOWN_INCOMPAT = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE
_KNOWN_INCOMPAT |= INCOMPAT_COMPRESSION | INCOMPAT_EXTL2

OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00  # L1 and standard L2 entries: the host offset
OFLAG_COMPRESSED = 1 << 62
OFLAG_ZERO = 1

ZLIB = "zlib"
ZSTD = "zstd"
_COMPRESSION_TYPES = {0: ZLIB, 1: ZSTD}

_L1, _L2, _DATA, _COMPRESSED = range(4)
_V2 = struct.Struct(">4sIQIIQIIQQIIQ")  # the 72 bytes every version has


class NeedsScratch(Exception):
    """This image cannot be decoded in one pass; convert it through the scratch path.

    ``restart`` says whether stream bytes were consumed (the blob must be read again).
    """

    def __init__(self, message: str, *, restart: bool = True) -> None:
        super().__init__(message)
        self.restart = restart


@dataclass(frozen=True)
class Header:
    """The fields of a qcow2 header the decoder uses."""

    version: int
    cluster_bits: int
    size: int  # virtual size in bytes
    l1_size: int
    l1_offset: int
    compression: str  # zlib | zstd

    @property
    def cluster_size(self) -> int:
        return 1 << self.cluster_bits

    @property
    def l2_entries(self) -> int:
        return self.cluster_size // 8

    @property
    def l1_needed(self) -> int:
        """L1 entries that map the virtual size (entries past them are never read)."""
        span = self.cluster_size * self.l2_entries
        return -(-self.size // span)


def parse_header(head: bytes) -> Header:
    """Parse and check a qcow2 header; refuse what the decoder (and the qemu-img path) refuses."""
    if len(head) < _V2.size or not head.startswith(MAGIC):
        raise CorruptData("not a qcow2 header, or a truncated one")
    (
        _magic,
        version,
        backing_offset,
        _backing_size,
        cluster_bits,
        size,
        crypt_method,
        l1_size,
        l1_offset,
        _refcount_offset,
        _refcount_clusters,
        _nb_snapshots,
        _snapshots_offset,
    ) = _V2.unpack_from(head)
    if version not in (2, 3):
        raise UnsupportedFormat(f"qcow2 version {version} is not supported")
    if backing_offset:
        raise BackingFileRefused(
            "the qcow2 disk names a backing file; flatten it before publishing"
        )
    if not MIN_CLUSTER_BITS <= cluster_bits <= MAX_CLUSTER_BITS:
        raise CorruptData(
            f"qcow2 cluster_bits {cluster_bits} is outside {MIN_CLUSTER_BITS}..{MAX_CLUSTER_BITS}"
        )
    cluster_size = 1 << cluster_bits
    if crypt_method:
        raise UnsupportedFormat(
            f"the qcow2 disk is encrypted (crypt_method {crypt_method}); publish it decrypted"
        )
    compression = ZLIB
    if version == 3:
        if len(head) < 104:
            raise CorruptData("qcow2 version 3 header is truncated")
        incompatible = struct.unpack_from(">Q", head, 72)[0]
        header_length = struct.unpack_from(">I", head, 100)[0]
        unknown = incompatible & ~_KNOWN_INCOMPAT
        if unknown:
            bits = [str(bit) for bit in range(64) if unknown >> bit & 1]
            raise UnsupportedFormat(
                f"the qcow2 disk sets incompatible feature bits {', '.join(bits)}, which this "
                "importer does not know"
            )
        if incompatible & INCOMPAT_DATA_FILE:
            raise ExternalFileRefused(
                "the qcow2 disk keeps its data in an external data file (incompatible feature "
                "bit 2); publish a self-contained image"
            )
        if incompatible & INCOMPAT_EXTL2:
            raise UnsupportedFormat(
                "the qcow2 disk uses extended L2 entries (subclusters); convert it without "
                "extended_l2 before publishing"
            )
        if incompatible & INCOMPAT_CORRUPT:
            raise CorruptData("the qcow2 disk is marked corrupt (incompatible feature bit 1)")
        if not 104 <= header_length <= cluster_size or header_length > len(head):
            raise CorruptData(f"qcow2 header length {header_length} is out of range")
        compression_type = head[104] if header_length > 104 else 0
        if bool(compression_type) != bool(incompatible & INCOMPAT_COMPRESSION):
            raise CorruptData(
                f"qcow2 compression type {compression_type} disagrees with incompatible "
                "feature bit 3"
            )
        if compression_type not in _COMPRESSION_TYPES:
            raise UnsupportedFormat(f"qcow2 compression type {compression_type} is not supported")
        compression = _COMPRESSION_TYPES[compression_type]
    header = Header(version, cluster_bits, size, l1_size, l1_offset, compression)
    if l1_size * 8 > MAX_L1_BYTES:
        raise CorruptData(f"the qcow2 L1 table of {l1_size} entries is larger than qemu allows")
    if l1_size < header.l1_needed:
        raise CorruptData(
            f"the qcow2 L1 table of {l1_size} entries is too small for a virtual size of {size}"
        )
    if header.l1_needed and (l1_offset == 0 or l1_offset % cluster_size):
        raise CorruptData(f"the qcow2 L1 table offset {l1_offset} is not cluster aligned")
    return header


def stream_obstacle(header: Header) -> str | None:
    """Why this image would exceed the decoder's memory bounds (scratch path), or None."""
    if header.l1_needed * 8 > MAX_L1_STREAM_BYTES:
        return (
            f"its active L1 table needs {header.l1_needed * 8 >> 20} MiB, more than the "
            f"{MAX_L1_STREAM_BYTES >> 20} MiB the streaming decoder holds"
        )
    return None


def _entries(data: bytes) -> array:
    table = array("Q", data)
    if sys.byteorder == "little":
        table.byteswap()
    return table


class _Reader:
    """The qcow2 file read front to back, the last :data:`LOOKBACK` bytes passed kept.

    What the stream skips (nothing mapped it yet) and what small reads take (tables,
    compressed clusters) stay in a window behind the read position, so a table may map
    data shortly before itself: ``qemu-img convert -c`` packs the first compressed
    clusters of a new L2 table into the cluster it was filling before that table, and
    compressed clusters share sectors. A read that starts before the window raises
    :class:`NeedsScratch`. Plain data runs are read straight into the caller's buffer.
    """

    def __init__(self, stream: Any, limit: int | None, lookback: int) -> None:
        self._stream = stream
        self._limit = limit
        self._lookback = lookback
        self.pos = 0  # bytes of the file consumed
        # Consecutive pieces (file offset, bytes) covering [self._kept_start, self.pos).
        self._kept: deque[tuple[int, bytearray]] = deque()
        self._kept_start = 0

    def _take(self, count: int) -> int:
        """Read up to ``count`` bytes into the window; return how many (fewer at the end)."""
        return self._fill(bytearray(count), 0)

    def _fill(self, piece: bytearray, start: int) -> int:
        """Read ``piece[start:]`` from the stream and keep it in the window; return the
        bytes read. At the end of the file ``piece`` is cut after them."""
        n = read_full(self._stream, memoryview(piece)[start:])
        if start + n < len(piece):
            del piece[start + n :]
        if n:
            self._kept.append((self.pos, memoryview(piece)[start:] if start else piece))
            self._consumed(n)
        return n

    def _consumed(self, n: int) -> None:
        self.pos += n
        if self._limit is not None and self.pos > self._limit:
            raise DiskTooLarge(
                f"the qcow2 file runs past {self._limit} bytes, more than it declared or its "
                "virtual size allows; refusing it",
                limit=self._limit,
            )

    def _trim(self) -> None:
        floor = self.pos - self._lookback
        while self._kept and self._kept[0][0] + len(self._kept[0][1]) <= floor:
            self._kept.popleft()
        self._kept_start = self._kept[0][0] if self._kept else self.pos

    def _advance(self, offset: int, what: str) -> None:
        """Check that ``offset`` is still in reach; skip ahead to it if it lies ahead."""
        if offset < self._kept_start:
            raise NeedsScratch(
                f"{what} at file offset {offset} comes after the stream passed it (the table "
                f"mapping it follows the data by more than {self._lookback >> 10} KiB)"
            )
        while self.pos < offset:
            if not self._take(min(offset - self.pos, SKIP_PIECE)):
                raise CorruptData(f"{what} at file offset {offset} lies past the end of the file")
            self._trim()

    def _slice(self, start: int, end: int) -> bytes:
        parts = []
        for piece_start, piece in reversed(self._kept):
            if piece_start + len(piece) <= start:
                break
            if piece_start < end:
                parts.append(piece[max(0, start - piece_start) : end - piece_start])
        return b"".join(reversed(parts))

    def read(self, offset: int, length: int, what: str) -> bytes | bytearray:
        """``length`` bytes at ``offset`` (fewer at the end of the file); do not modify them."""
        self._advance(offset, what)
        behind = self.pos - offset  # bytes of it the stream has passed
        if behind >= length:
            data: bytes | bytearray = self._slice(offset, offset + length)
        else:
            # The rest is read straight into the answer, after the few bytes behind
            # (a compressed cluster starts inside the last sector of the one before):
            # no copy of the whole.
            data = bytearray(length)
            if behind:
                data[:behind] = self._slice(offset, self.pos)
            self._fill(data, behind)
        self._trim()
        return data

    def readinto(self, offset: int, view: memoryview, what: str) -> int:
        """Fill ``view`` from ``offset`` on; return the bytes read (fewer at the end)."""
        self._advance(offset, what)
        n = min(len(view), self.pos - offset)
        if n:
            view[:n] = self._slice(offset, offset + n)
        if n < len(view):
            got = read_full(self._stream, view[n:])
            self._consumed(got)
            n += got
            self._kept.clear()  # the window must end at the read position
            self._kept_start = self.pos
        return n

    def drain(self) -> None:
        """Read the rest of the file (snapshots, refcounts, padding) so all of it is hashed."""
        self._kept.clear()
        drain(self._stream, self._consumed, SKIP_PIECE)
        self._kept_start = self.pos


def _inflate_deflate(data: memoryview, out: memoryview) -> int:
    """Inflate one compressed cluster into ``out`` (one cluster); return the bytes made."""
    # qemu writes raw deflate with a 4 KiB window (windowBits -12) and reads it so.
    return inflate_raw_into(data, out, window_bits=12, what="a compressed qcow2 cluster")


def _inflate_zstd(data: memoryview, out: memoryview) -> int:
    dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
    try:
        with dctx.stream_reader(data, read_across_frames=True) as reader:
            return read_full(reader, out)
    except zstandard.ZstdError as exc:
        raise CorruptData(f"a zstd compressed qcow2 cluster does not decompress: {exc}") from exc


class StreamDecoder:
    """Decode one qcow2 file from ``stream`` into ``writer`` (see the module docstring).

    ``file_size`` (the file's declared size, when known) bounds every offset; ``limit``
    bounds the bytes read. :meth:`run` reads the stream to its end.
    """

    def __init__(
        self,
        header: Header,
        stream: Any,
        writer: DiskWriter,
        *,
        file_size: int | None = None,
        limit: int | None = None,
        progress: Callable[[int], None] | None = None,
        workers: int | None = None,
    ) -> None:
        self.header = header
        self.writer = writer
        self.file_size = file_size
        self.progress = progress
        lookback = max(LOOKBACK, 2 * header.cluster_size + 512)
        self.reader = _Reader(stream, limit if limit is not None else file_size, lookback)
        self.workers = workers or min(8, len(os.sched_getaffinity(0))) + WRITING_THREADS
        cs = header.cluster_size
        self._csize_shift = 62 - (header.cluster_bits - 8)
        self._csize_mask = (1 << (header.cluster_bits - 8)) - 1
        self._coffset_mask = (1 << self._csize_shift) - 1
        self._inflate = _inflate_zstd if header.compression == ZSTD else _inflate_deflate
        self._run_clusters = max(1, BUFFER_BYTES // cs)
        self._buffer_size = self._run_clusters * cs
        # One pool for plain data and inflated runs: taking a buffer is what bounds the
        # work in flight, and so the memory.
        self._buffer_count = self.workers + SPARE_RUNS
        self._buffers: queue.Queue[tuple[bytearray, int]] = queue.Queue()
        self._buffers_made = 0
        self._tasks: queue.Queue[tuple[Callable[..., None], tuple] | None] = queue.Queue()
        self._failures: list[BaseException] = []
        self.clusters = {"data": 0, "compressed": 0}

    # -- what the tables say ---------------------------------------------------------

    def _check_offset(self, offset: int, what: str) -> None:
        if offset % self.header.cluster_size:
            raise CorruptData(f"{what} offset {offset} in the qcow2 disk is not cluster aligned")
        if self.file_size is not None and offset >= self.file_size:
            raise CorruptData(
                f"{what} offset {offset} lies outside the {self.file_size}-byte qcow2 file"
            )

    def _l1(self, heap: list, offset: int, length: int) -> None:
        data = self.reader.read(offset, length, "the L1 table")
        if len(data) < length:
            raise CorruptData(f"the qcow2 L1 table at {offset} runs past the end of the file")
        for index, entry in enumerate(_entries(data)):
            l2_offset = entry & OFFSET_MASK
            if l2_offset:
                self._check_offset(l2_offset, "an L2 table")
                heapq.heappush(heap, (l2_offset, _L2, index, 0))

    def _l2(self, heap: list, offset: int, index: int) -> None:
        header = self.header
        cs = header.cluster_size
        data = self.reader.read(offset, cs, "an L2 table")
        if len(data) < cs:
            raise CorruptData(f"the qcow2 L2 table at {offset} runs past the end of the file")
        base = index * header.l2_entries * cs
        run_host = run_guest = run_length = 0
        packed: list[tuple[int, int, int]] = []  # compressed clusters back to back: a run
        for j, entry in enumerate(_entries(data)):
            if not entry:
                continue  # unallocated: a hole
            guest = base + j * cs
            if guest >= header.size:
                break
            if entry & OFLAG_COMPRESSED:
                host = entry & self._coffset_mask
                sectors = (entry >> self._csize_shift & self._csize_mask) + 1
                if self.file_size is not None and host >= self.file_size:
                    raise CorruptData(
                        f"a compressed cluster offset {host} lies outside the "
                        f"{self.file_size}-byte qcow2 file"
                    )
                length = sectors * 512 - (host & 511)
                if packed and not self._extends(packed, host, length):
                    heapq.heappush(heap, (packed[0][0], _COMPRESSED, packed[0][2], packed))
                    packed = []
                packed.append((host, length, guest))
                continue
            if entry & OFLAG_ZERO:
                if header.version < 3:
                    raise CorruptData("a qcow2 version 2 disk holds a zero cluster entry")
                continue  # reads as zeros: a hole
            host = entry & OFFSET_MASK
            if not host:
                continue
            self._check_offset(host, "a data cluster")
            length = min(cs, header.size - guest)
            if run_length and host == run_host + run_length and guest == run_guest + run_length:
                run_length += length
                continue
            if run_length:
                heapq.heappush(heap, (run_host, _DATA, run_guest, run_length))
            run_host, run_guest, run_length = host, guest, length
        if run_length:
            heapq.heappush(heap, (run_host, _DATA, run_guest, run_length))
        if packed:
            heapq.heappush(heap, (packed[0][0], _COMPRESSED, packed[0][2], packed))

    def _extends(self, packed: list[tuple[int, int, int]], host: int, length: int) -> bool:
        """Whether the compressed cluster at ``host`` joins the run ``packed``.

        qemu packs compressed clusters byte by byte, each starting inside the last
        sector of the one before, so a run is a stretch of the file read at once.
        """
        first, (last, last_length, _) = packed[0][0], packed[-1]
        return (
            last <= host <= last + last_length
            and host + length - first <= RUN_COMPRESSED_BYTES
            and len(packed) < self._run_clusters
        )

    # -- moving the data -------------------------------------------------------------

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        self._tasks.put((fn, args))

    def _work(self) -> None:
        """One pool thread: run tasks until told to stop; a failure stops the decoder."""
        while (task := self._tasks.get()) is not None:
            fn, args = task
            try:
                fn(*args)
            except BaseException as exc:
                self._failures.append(exc)

    def _buffer(self) -> tuple[bytearray, int]:
        """A free buffer; made while fewer than the pool's count exist, else waited for."""
        if self._buffers.empty() and self._buffers_made < self._buffer_count:
            self._buffers_made += 1
            return aligned_buffer(self._buffer_size)
        return self._buffers.get()

    def _data(self, host: int, guest: int, length: int) -> None:
        self.clusters["data"] += -(-length // self.header.cluster_size)
        done = 0
        while done < length and not self._failures:
            n = min(self._buffer_size, length - done)
            buffer, start = self._buffer()
            view = memoryview(buffer)[start : start + n]
            try:
                got = self.reader.readinto(host + done, view, "a data cluster")
            except BaseException:
                self._buffers.put((buffer, start))
                raise
            if got < n:
                self._buffers.put((buffer, start))
                raise CorruptData(
                    f"the data cluster at {host + done} runs past the end of the qcow2 file"
                )
            self._submit(self._write_plain, buffer, start, n, guest + done)
            done += n
            if self.progress:
                self.progress(self.reader.pos)

    def _write_plain(self, buffer: bytearray, start: int, n: int, guest: int) -> None:
        try:
            self.writer.write_at(memoryview(buffer)[start : start + n], guest)
        finally:
            self._buffers.put((buffer, start))

    def _compressed(self, packed: list[tuple[int, int, int]]) -> None:
        self.clusters["compressed"] += len(packed)
        start = packed[0][0]
        last, last_length, _ = packed[-1]
        data = self.reader.read(start, last + last_length - start, "a compressed cluster")
        if len(data) <= last - start:
            raise CorruptData(f"the compressed cluster at {last} lies past the end of the file")
        self._submit(self._write_compressed, data, packed, *self._buffer())

    def _write_compressed(
        self, data: bytes, packed: list[tuple[int, int, int]], buffer: bytearray, begin: int
    ) -> None:
        """Inflate one run into ``buffer``; write each guest-contiguous stretch once."""
        cs = self.header.cluster_size
        size = self.header.size
        try:
            out = memoryview(buffer)[begin : begin + len(packed) * cs]
            source = memoryview(data)
            start = packed[0][0]
            fill = first_guest = 0
            for host, length, guest in packed:
                if fill and guest != first_guest + fill:
                    self.writer.write_at(out[:fill], first_guest)
                    fill = 0
                if not fill:
                    first_guest = guest
                # Inflated in place, after the clusters before it (the last cluster of a
                # disk whose size is not a multiple of the cluster size is cut after).
                made = self._inflate(
                    source[host - start : host - start + length], out[fill : fill + cs]
                )
                if made != cs:
                    raise CorruptData(
                        f"a compressed qcow2 cluster inflates to {made} bytes, not the "
                        f"cluster size {cs}"
                    )
                fill += min(cs, size - guest)
            if fill:
                # Zero blocks stay holes: the decoder only writes targets that read as zeros.
                self.writer.write_at(out[:fill], first_guest)
        finally:
            self._buffers.put((buffer, begin))

    def run(self) -> None:
        """Decode the whole file into the writer and read the stream to its end."""
        header = self.header
        # (file offset, kind, guest offset, length; for compressed clusters, the run)
        heap: list[tuple[int, int, int, Any]] = []
        if header.l1_needed:
            heap.append((header.l1_offset, _L1, 0, header.l1_needed * 8))
        # Threads started up front: each waits for its direct writes, and the cores need
        # the others inflating meanwhile (a pool that starts threads on demand keeps two).
        threads = [
            threading.Thread(target=self._work, name=f"qcow2-inflate-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for thread in threads:
            thread.start()
        try:
            while heap and not self._failures:
                if len(heap) > MAX_PENDING:
                    raise NeedsScratch(
                        f"more than {MAX_PENDING} stretches of the file wait for the stream"
                    )
                offset, kind, guest, length = heapq.heappop(heap)
                if kind == _COMPRESSED:
                    self._compressed(length)
                elif kind == _L1:
                    self._l1(heap, offset, length)
                elif kind == _L2:
                    self._l2(heap, offset, guest)
                else:
                    self._data(offset, guest, length)
            if not self._failures:
                self.reader.drain()
        finally:
            for _ in threads:
                self._tasks.put(None)
            for thread in threads:
                thread.join()
        if self._failures:
            raise self._failures[0]
        if self.progress:
            self.progress(self.reader.pos)
