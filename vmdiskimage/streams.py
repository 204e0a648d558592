# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""Stream helpers of the data path: filling and draining, a replayed head, threads.

Every stream here is read with ``readinto`` (``read`` where a decoder pulls that way);
none of them copies a byte the caller's buffer does not need. :class:`ReadAhead` and
:class:`HashThread` move work to a thread of their own: receiving and hashing both
release the GIL, so they overlap with decompression and writing.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import queue
import threading
from collections.abc import Callable
from typing import Any

#: Chunk size of the read-ahead and of :func:`drain`.
CHUNK_SIZE = 1 << 20


def address(view: memoryview) -> int:
    """Memory address of a writable buffer's first byte (for ctypes calls)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


def read_full(stream: Any, buffer: Any) -> int:
    """Fill ``buffer`` from ``stream`` unless EOF comes first; return the byte count."""
    view = memoryview(buffer).cast("B")
    total = 0
    while total < len(view):
        n = stream.readinto(view[total:])
        if not n:
            break
        total += n
    return total


def read_head(stream: Any, size: int) -> bytes:
    """The next ``size`` bytes of ``stream`` (fewer only at its end)."""
    head = bytearray(size)
    n = read_full(stream, head)
    return bytes(head[:n])


def drain(
    stream: Any, on_read: Callable[[int], None] | None = None, chunk_size: int = CHUNK_SIZE
) -> int:
    """Read ``stream`` to its end (a verifying reader checks its digest there); return the
    bytes read. ``on_read`` is told each count as it comes, to stop a stream that runs on."""
    scratch = bytearray(chunk_size)
    total = 0
    while n := stream.readinto(scratch):
        total += n
        if on_read is not None:
            on_read(n)
    return total


class Replay:
    """A stream whose first bytes were read (to sniff them) and are handed out again.

    ``bytes_read`` counts what :meth:`readinto` handed out, replayed bytes included.
    """

    def __init__(self, head: bytes, stream: Any) -> None:
        self.head = head
        self._head = memoryview(head)
        self._stream = stream
        self.bytes_read = 0

    def readinto(self, buffer: Any) -> int:
        if len(self._head):
            view = memoryview(buffer).cast("B")
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
        else:
            n = self._stream.readinto(buffer)
        self.bytes_read += n
        return n

    def readable(self) -> bool:
        return True


class HashThread:
    """A hash object whose ``update`` runs in its own thread (sha256 releases the GIL).

    Only for callers that never reuse a buffer after passing it to ``update``.
    """

    def __init__(self, hasher: Any, *, name: str = "sha256", depth: int = 4) -> None:
        self._hasher = hasher
        self.name = hasher.name
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            self._hasher.update(data)

    def update(self, data: Any) -> None:
        self._queue.put(data)

    def hexdigest(self) -> str:
        self.close()
        return self._hasher.hexdigest()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


class ReadAhead(io.RawIOBase):
    """Reads ``source`` in a background thread, ``depth`` chunks ahead.

    Each ``source.readinto`` gets a fresh buffer, so the source may keep a reference to
    it (a :class:`~vmdiskimage.blobs.BlobReader` hashes it in a :class:`HashThread`).
    Memory stays bounded at ``depth * chunk_size``. Errors of the source (a digest
    mismatch at EOF among them) are raised to the caller when it reaches the point where
    they happened. Closing the read-ahead closes the source.
    """

    _EOF = object()

    def __init__(
        self,
        source: Any,
        *,
        chunk_size: int = CHUNK_SIZE,
        depth: int = 4,
        name: str = "read-ahead",
    ) -> None:
        super().__init__()
        self.source = source
        self._chunk_size = chunk_size
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._current = memoryview(b"")
        self._done = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                buf = bytearray(self._chunk_size)
                n = self.source.readinto(buf)
                if not n:
                    self._put(self._EOF)
                    return
                # A view, not a resize: the hash thread may still hold the buffer.
                if not self._put(memoryview(buf)[:n] if n < len(buf) else buf):
                    return
        except BaseException as exc:  # handed to the consumer thread
            self._put(exc)

    def _next(self) -> memoryview | None:
        """The next chunk from the thread, or None at the end (raises what the source raised)."""
        if self._done:
            return None
        item = self._queue.get()
        if item is self._EOF:
            self._done = True
            return None
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return memoryview(item)

    def readable(self) -> bool:
        return True

    def peek(self, size: int) -> bytes:
        """The next ``size`` bytes (fewer only at the end), left in place to be read."""
        while len(self._current) < size and (chunk := self._next()) is not None:
            # Only ever at the start of a stream, for a few sniffed bytes.
            self._current = memoryview(bytes(self._current) + chunk) if self._current else chunk
        return self._current[:size].tobytes()

    def readinto(self, buffer: Any) -> int:
        if not len(self._current):
            chunk = self._next()
            if chunk is None:
                return 0
            self._current = chunk
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._current))
        view[:n] = self._current[:n]
        self._current = self._current[n:]
        return n

    def read(self, size: int = -1) -> bytes:
        # zstandard and lzma pull with read(): hand over whole chunks without a copy.
        if not len(self._current):
            chunk = self._next()
            if chunk is None:
                return b""
            self._current = chunk
        if size is None or size < 0 or size >= len(self._current):
            view, self._current = self._current, memoryview(b"")
            # A whole chunk is handed over as is; zstandard and lzma take any buffer.
            return view.obj if len(view) == len(view.obj) else view.tobytes()  # type: ignore[return-value]
        data = self._current[:size].tobytes()
        self._current = self._current[size:]
        return data

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.1)
        self._thread.join()
        self.source.close()
        super().close()
