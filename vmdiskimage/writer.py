# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""The sparse streaming writer: a file (Filesystem volume) or a block device target.

Zero blocks are skipped instead of written. On a file they become holes (the file
is truncated to zero first, so no stale data survives a retry). On a block device
they are skipped only after the whole device was discarded with
``fallocate(PUNCH_HOLE)``, which the kernel only accepts when the device then reads
back zeros; otherwise every block is written.

Aligned data goes out with ``O_DIRECT`` when the target allows it: no copy into the
page cache (the largest CPU cost after decompression and hashing) and little left
to flush at the final fsync. Unaligned tails use the ordinary descriptor.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import queue
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import DiskTooLarge, TargetError, TargetFull, TargetNotWritable, TargetTooSmall
from .libc import last_error, libc
from .streams import address, read_full

log = logging.getLogger(__name__)

CHUNK_SIZE = 4 << 20
#: O_DIRECT needs offsets, lengths and buffer addresses aligned to the logical block size.
DIRECT_ALIGNMENT = 4096
#: Granularity of hole detection: zero runs shorter than this are written.
BLOCK_SIZE = 64 << 10

#: :func:`is_zero` compares a buffer with itself shifted by this many bytes.
ZERO_STRIDE = 64
_ZERO_HEAD = bytes(ZERO_STRIDE)

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02


def _load_libc() -> Any:
    c = libc()
    c.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    c.memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    c.memcmp.restype = ctypes.c_int
    return c


_libc = _load_libc()


def _fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    if _libc.fallocate(fd, mode, offset, length) != 0:
        raise last_error()


def is_zero(view: memoryview) -> bool:
    """Whether every byte of ``view`` (a byte-format memoryview) is zero.

    The first ZERO_STRIDE bytes are zero and every byte equals the one ZERO_STRIDE
    before it: one memcmp of the buffer against itself, which reads it once and runs
    through ctypes without the GIL. The 1.5 GiB of zeros in a typical disk are
    checked here, and the receiving, hashing and decompressing threads need the GIL
    between their own calls.
    """
    length = len(view)
    head = min(length, ZERO_STRIDE)
    if view[:head] != _ZERO_HEAD[:head]:
        return False
    if length <= ZERO_STRIDE:
        return True
    if view.readonly:  # ctypes needs a writable buffer for its address
        return view.tobytes() == bytes(length)
    start = address(view)
    return _libc.memcmp(start, start + ZERO_STRIDE, length - ZERO_STRIDE) == 0


def aligned_buffer(size: int) -> tuple[bytearray, int]:
    """A bytearray with ``size`` bytes starting at a DIRECT_ALIGNMENT boundary: (buf, start)."""
    buffer = bytearray(size + DIRECT_ALIGNMENT)
    start = -address(memoryview(buffer)) % DIRECT_ALIGNMENT
    return buffer, start


def is_block_device(path: str | Path) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except FileNotFoundError:
        return False


class DiskWriter:
    """Writes a disk sequentially from offset 0, leaving zero blocks unwritten where safe.

    ``limit`` caps how many bytes the source may produce (its declared size, or what
    the target can hold): more raises :class:`DiskTooLarge` before anything past it
    is written.
    """

    def __init__(
        self, path: str | Path, *, limit: int | None = None, direct_io: bool = True
    ) -> None:
        self.path = Path(path)
        self.direct_fd = -1
        self.is_block = is_block_device(self.path)
        self.offset = 0
        self.bytes_written = 0  # bytes actually written (holes excluded)
        self.limit = limit
        self.zeroed = False
        self._copy_base = 0
        self._lock = threading.Lock()  # write_at may run in several threads
        self._direct_refused = False
        try:
            if self.is_block:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
                self.capacity: int | None = os.lseek(self.fd, 0, os.SEEK_END)
                self.zeroed = self._discard_device()
            else:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o660)
                os.ftruncate(self.fd, 0)
                self.capacity = None
        except OSError as exc:
            raise open_error(self.path, exc, block=self.is_block) from exc
        if direct_io and hasattr(os, "O_DIRECT"):
            try:
                self.direct_fd = os.open(self.path, os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)
            except OSError:  # tmpfs and some FUSE filesystems refuse O_DIRECT
                log.info("%s does not support O_DIRECT; using buffered writes", self.path)
        if self.capacity is not None and (self.limit is None or self.limit > self.capacity):
            self.limit = self.capacity

    def _discard_device(self) -> bool:
        assert self.capacity is not None
        try:
            _fallocate(self.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, self.capacity)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENODEV, errno.EPERM):
                raise
            log.info("%s cannot be discarded to zeros (%s): writing every block", self.path, exc)
            return False
        return True

    @property
    def skip_zeros(self) -> bool:
        return not self.is_block or self.zeroed

    def write(self, buffer: bytearray, length: int, start: int = 0) -> None:
        """Write ``buffer[start:start + length]`` at the current offset, skipping zero blocks."""
        end = self.offset + length
        if self.limit is not None and end > self.limit:
            raise DiskTooLarge(
                f"the disk data runs past {self.limit} bytes, more than it declared or the "
                "target holds; refusing to write it",
                limit=self.limit,
            )
        view = memoryview(buffer)[start : start + length]
        try:
            if not self.skip_zeros:
                self._pwrite(view, self.offset)
            elif is_zero(view):
                pass  # the common case of a sparse disk: one memcmp and nothing to write
            else:
                self._write_sparse(view, self.offset)
        except OSError as exc:
            raise write_error(f"writing {self.path} at {self.offset}", exc) from exc
        self.offset = end

    def write_at(self, view: memoryview, offset: int, *, sparse: bool = True) -> None:
        """Write ``view`` at ``offset``; safe from several threads; ``offset`` is untouched.

        Zero blocks are skipped where safe unless ``sparse`` is False (the caller
        checked already).
        """
        if self.limit is not None and offset + len(view) > self.limit:
            raise DiskTooLarge(
                f"the disk data runs past {self.limit} bytes, more than it declared or the "
                "target holds; refusing to write it",
                limit=self.limit,
            )
        try:
            if not (sparse and self.skip_zeros):
                self._pwrite(view, offset)
            elif not is_zero(view):
                self._write_sparse(view, offset)
        except OSError as exc:
            raise TargetError(f"writing {self.path} at {offset} failed: {exc.strerror}") from exc

    def _write_sparse(self, view: memoryview, offset: int) -> None:
        """Write the non-zero ``BLOCK_SIZE`` blocks of ``view``, which belongs at ``offset``."""
        length = len(view)
        run_start = -1
        pos = 0
        while pos < length:
            step = min(BLOCK_SIZE, length - pos)
            if is_zero(view[pos : pos + step]):
                if run_start >= 0:
                    self._pwrite(view[run_start:pos], offset + run_start)
                    run_start = -1
            elif run_start < 0:
                run_start = pos
            pos += step
        if run_start >= 0:
            self._pwrite(view[run_start:length], offset + run_start)

    def _pwrite(self, view: memoryview, offset: int) -> None:
        direct = self.direct_fd >= 0 and not self._direct_refused and not view.readonly
        if direct and offset % DIRECT_ALIGNMENT == 0:
            aligned = len(view) // DIRECT_ALIGNMENT * DIRECT_ALIGNMENT
            if aligned and address(view) % DIRECT_ALIGNMENT == 0:
                try:
                    self._pwrite_fd(self.direct_fd, view[:aligned], offset)
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    # Not closed here: another thread may be writing through it.
                    log.info("O_DIRECT write refused (%s); using buffered writes", exc)
                    self._direct_refused = True
                else:
                    view, offset = view[aligned:], offset + aligned
        self._pwrite_fd(self.fd, view, offset)

    def _pwrite_fd(self, fd: int, view: memoryview, offset: int) -> None:
        while len(view):
            n = os.pwrite(fd, view, offset)
            with self._lock:
                self.bytes_written += n
            view = view[n:]
            offset += n

    def copy_from(
        self,
        stream: Any,
        *,
        length: int | None = None,
        progress: Callable[[int], None] | None = None,
        chunk_size: int = CHUNK_SIZE,
        buffers: int = 3,
    ) -> int:
        """Copy ``stream`` (``length`` bytes, or to EOF) into the target; return bytes read.

        The caller's thread reads (decompresses); a writer thread checks for zero blocks
        and writes, so the two overlap. ``buffers`` chunks bound the memory used.
        """
        self._copy_base = self.offset
        free: queue.Queue[tuple[bytearray, int]] = queue.Queue()
        for _ in range(buffers):
            free.put(aligned_buffer(chunk_size))
        full: queue.Queue[tuple[bytearray, int, int] | None] = queue.Queue()
        failure: list[BaseException] = []

        def write_loop() -> None:
            while (item := full.get()) is not None:
                buffer, start, n = item
                if not failure:
                    try:
                        self.write(buffer, n, start)
                    except BaseException as exc:
                        failure.append(exc)
                free.put((buffer, start))

        worker = threading.Thread(target=write_loop, name="disk-writer", daemon=True)
        worker.start()
        copied = 0
        try:
            while not failure and (length is None or copied < length):
                want = chunk_size if length is None else min(chunk_size, length - copied)
                buffer, start = free.get()
                n = read_full(stream, memoryview(buffer)[start : start + want])
                if not n:
                    free.put((buffer, start))
                    break
                if self.limit is not None and self.offset_after(copied + n) > self.limit:
                    raise DiskTooLarge(
                        f"the disk data runs past {self.limit} bytes, more than it declared "
                        "or the target holds; refusing to write it",
                        limit=self.limit,
                    )
                full.put((buffer, start, n))
                copied += n
                if progress:
                    progress(copied)
        finally:
            full.put(None)
            worker.join()
        if failure:
            raise failure[0]
        return copied

    def offset_after(self, copied: int) -> int:
        """The write offset once ``copied`` bytes of the current copy are written."""
        return self._copy_base + copied

    def finish(self, size: int) -> None:
        """Set the disk's final size (holes to the end on a file), fsync and close."""
        if size < self.offset:
            raise TargetTooSmall(
                f"target size {size} is smaller than the {self.offset} bytes of disk data",
                target_size=size,
                virtual_size=self.offset,
            )
        try:
            if self.is_block:
                assert self.capacity is not None
                if size > self.capacity:
                    raise TargetTooSmall(
                        f"block device {self.path} holds {self.capacity} bytes, the disk needs "
                        f"{size}",
                        target_size=self.capacity,
                        virtual_size=size,
                    )
            else:
                os.ftruncate(self.fd, size)
            os.fsync(self.fd)
        except OSError as exc:
            raise write_error(f"finishing {self.path}", exc) from exc
        finally:
            self.close()

    def close(self) -> None:
        if self.direct_fd >= 0:
            os.close(self.direct_fd)
            self.direct_fd = -1
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> DiskWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: errno values that mean the volume has no room left (a full filesystem, a quota).
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def write_error(doing: str, exc: OSError) -> TargetError:
    """The error for a failed write: a full volume is named as such."""
    if exc.errno in NO_SPACE:
        return TargetFull(
            f"{doing} failed: the target volume is full ({exc.strerror}); it holds less "
            "than its claim requested, or something else fills it"
        )
    return TargetError(f"{doing} failed: {exc.strerror}")


def open_error(path: str | Path, exc: OSError, *, block: bool) -> TargetError:
    """The error for a target that cannot be opened; a refused block device names why."""
    if exc.errno in (errno.EACCES, errno.EPERM) and block:
        return TargetNotWritable(
            f"cannot open the block device {path} as uid {os.getuid()}: {exc.strerror}. The "
            "node's container runtime leaves block devices to root unless it gives them to "
            "the pod's user: set device_ownership_from_security_context = true in the "
            "node's containerd or CRI-O configuration"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return TargetNotWritable(f"cannot open target {path}: {exc.strerror}")
    return TargetError(f"cannot open target {path}: {exc.strerror}")


#: What :func:`clear_target` zeroes on a block device that cannot be discarded.
CLEAR_EDGE_BYTES = 1 << 20


def clear_target(path: str | Path) -> str | None:
    """Remove what a failed import left on ``path``; return what was done, or None.

    A file is truncated to nothing. A block device is discarded to zeros where the
    device allows it; otherwise its first and last MiB are zeroed, which removes the
    partition tables (GPT keeps a copy at the end), so nothing boots from the rest.
    """
    target = Path(path)
    try:
        if not is_block_device(target):
            if not target.is_file():
                return None
            os.truncate(target, 0)
            return "truncated"
        fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
        try:
            size = os.lseek(fd, 0, os.SEEK_END)
            try:
                _fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, size)
                done = "discarded"
            except OSError:
                edge = min(CLEAR_EDGE_BYTES, size)
                os.pwrite(fd, bytes(edge), 0)
                os.pwrite(fd, bytes(edge), size - edge)
                done = "zeroed in its first and last MiB"
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        log.error("could not clear the target %s after the failure: %s", target, exc.strerror)
        return None
    return done
