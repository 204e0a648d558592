# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""Decompression of layer and artifact streams: gzip, zstd, xz, or none.

gzip is the usual containerDisk layer encoding, so it goes through zlib-ng when
installed (about 4x faster than stdlib zlib on this workload), else stdlib.
Every reader returned here supports ``readinto`` and bounds its output to the
caller's buffer, so a small layer that decompresses to terabytes costs no memory.
The xz decoder's own memory (its dictionary, sized by the stream's header) is
capped at :data:`XZ_MEMORY_LIMIT`. A zstd stream may start with skippable frames
(pzstd writes one before each frame, other tools metadata): it is zstd all the same.

Whole raw deflate streams whose inflated size is known (qcow2's compressed clusters)
go through libdeflate when installed (:func:`inflate_raw_into`; about twice as fast as
zlib-ng on them), else through zlib-ng or stdlib zlib.
"""

from __future__ import annotations

import ctypes
import gzip
import io
import lzma
import struct
import threading
import zlib
from collections.abc import Callable
from typing import IO, Any, TypeVar

from .errors import CorruptData, UnsupportedCompression, VMDiskImageError
from .streams import address

try:  # zlib-ng bindings: the fast gzip decoder
    from zlib_ng import zlib_ng as _zlib_ng
except ImportError:  # pragma: no cover - exercised only without the wheel
    _zlib_ng = None

try:  # the deflate wheel: libdeflate, the fast whole-buffer inflater
    from deflate import _deflate as _deflate_extension
except ImportError:  # pragma: no cover - exercised only without the wheel
    _deflate_extension = None

NONE = "none"
GZIP = "gzip"
ZSTD = "zstd"
XZ = "xz"
COMPRESSIONS = (NONE, GZIP, ZSTD, XZ)

_MAGIC = {
    GZIP: b"\x1f\x8b",
    ZSTD: b"\x28\xb5\x2f\xfd",
    XZ: b"\xfd7zXZ\x00",
}
READ_SIZE = 1 << 20
#: Memory the xz decoder may use: ``xz -9`` needs 65 MiB; a header may ask for 4 GiB.
XZ_MEMORY_LIMIT = 80 << 20


#: zstd skippable frames (RFC 8878 3.1.2): a little-endian magic 0x184D2A5?, its length.
_SKIPPABLE = struct.Struct("<II")
_SKIPPABLE_MAGIC = 0x184D2A50


def _is_skippable(head: bytes) -> bool:
    return len(head) >= 4 and struct.unpack_from("<I", head)[0] & ~0xF == _SKIPPABLE_MAGIC


def _after_skippable_frames(head: bytes) -> bytes:
    """What follows the skippable frames that start ``head``: b"" if they run past it."""
    while _is_skippable(head):
        if len(head) < _SKIPPABLE.size:
            return b""
        _, size = _SKIPPABLE.unpack_from(head)
        head = head[_SKIPPABLE.size + size :]
    return head


def detect_magic(head: bytes) -> str:
    """The compression whose magic bytes start ``head``, or ``none``."""
    for name, magic in _MAGIC.items():
        if head.startswith(magic):
            return name
    # zstd behind skippable frames: a zstd frame follows, or the head ends before one
    # would. LZ4 frames share the skippable magic (and are not supported): the frame
    # that follows tells them apart where the head shows it.
    if _is_skippable(head) and _MAGIC[ZSTD].startswith(_after_skippable_frames(head)[:4]):
        return ZSTD
    return NONE


def zstd_content_size(head: bytes) -> int | None:
    """The content size the first zstd frame of ``head`` declares (skippable frames are
    passed over), or None; a size hint, never a limit."""
    import zstandard

    frame = _after_skippable_frames(head)
    if not frame.startswith(_MAGIC[ZSTD]):
        return None
    try:
        size = zstandard.frame_content_size(frame)
    except zstandard.ZstdError:
        return None
    return size if size >= 0 else None


def from_media_type(media_type: str) -> str | None:
    """The compression a media type names (``...tar+gzip``, ``.tar.gzip``, ``+zstd``), if any."""
    mt = media_type.lower()
    for suffix, name in (
        ("+gzip", GZIP),
        (".gzip", GZIP),
        ("+zstd", ZSTD),
        (".zstd", ZSTD),
        ("+xz", XZ),
        (".xz", XZ),
    ):
        if mt.endswith(suffix):
            return name
    return None


def zlib_module() -> Any:
    """zlib-ng's zlib-compatible module when installed, else the standard library's."""
    return _zlib_ng if _zlib_ng is not None else zlib


def gzip_backend() -> str:
    """Which gzip decoder :func:`open_decompressed` uses."""
    return "zlib-ng" if _zlib_ng is not None else "zlib"


class _Libdeflate:
    """libdeflate's decompression calls, through ctypes, inflating into the caller's buffer.

    The deflate wheel links libdeflate into its extension module and exports its C
    functions; calling them directly (instead of the wheel's ``deflate_decompress``,
    which returns a new bytes object per call) inflates each cluster in place in the
    decoder's write buffer: no allocation and no copy under the GIL per cluster, 4% of
    a compressed-qcow2 import's CPU. ctypes releases the GIL during each call. Each
    thread keeps its own decompressor (libdeflate's are not thread safe).
    """

    SUCCESS, BAD_DATA, SHORT_OUTPUT, INSUFFICIENT_SPACE = range(4)

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)  # already loaded: the same handle, nothing mapped again
        self._alloc = lib.libdeflate_alloc_decompressor
        self._alloc.argtypes = []
        self._alloc.restype = ctypes.c_void_p
        self._free = lib.libdeflate_free_decompressor
        self._free.argtypes = [ctypes.c_void_p]
        self._free.restype = None
        self._decompress = lib.libdeflate_deflate_decompress
        self._decompress.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        self._decompress.argtypes += [ctypes.c_void_p, ctypes.c_size_t]
        self._decompress.argtypes += [ctypes.POINTER(ctypes.c_size_t)]
        self._decompress.restype = ctypes.c_int
        self._local = threading.local()

    def _decompressor(self) -> Any:
        state = getattr(self._local, "state", None)
        if state is None:
            state = self._local.state = _DecompressorState(self._alloc(), self._free)
        return state

    def inflate_into(self, data: memoryview, out: memoryview, what: str) -> int:
        state = self._decompressor()
        result = self._decompress(
            state.handle, address(data), len(data), address(out), len(out), state.out_ref
        )
        if result == self.SUCCESS:
            return state.out_size.value
        if result == self.INSUFFICIENT_SPACE:
            raise CorruptData(f"{what} inflates to more than {len(out)} bytes")
        raise CorruptData(f"{what} does not inflate: corrupt (libdeflate result {result})")


class _DecompressorState:
    """One thread's libdeflate decompressor, freed when the thread's state goes."""

    def __init__(self, handle: int | None, free: Any) -> None:
        if not handle:
            raise MemoryError("libdeflate could not allocate a decompressor")
        self.handle = handle
        self._free = free
        self.out_size = ctypes.c_size_t()
        self.out_ref = ctypes.byref(self.out_size)

    def __del__(self) -> None:
        self._free(self.handle)


_Binding = TypeVar("_Binding")


def _bind(binding: Callable[[str], _Binding], extension: Any) -> _Binding | None:
    """``binding`` over the C functions a wheel's extension module exports, or None
    when the wheel is missing or its build hides them (the caller falls back)."""
    if extension is None:
        return None  # pragma: no cover - exercised only without the wheel
    try:
        return binding(extension.__file__)
    except (OSError, AttributeError):  # pragma: no cover - a build that hides its symbols
        return None


_libdeflate = _bind(_Libdeflate, _deflate_extension)


def inflate_raw_into(
    data: Any, out: memoryview, window_bits: int = 15, what: str = "raw deflate data"
) -> int:
    """Inflate one whole raw deflate stream into ``out``; return the bytes it made.

    Bytes after the end of the stream are ignored (qemu rounds a compressed cluster up
    to a sector); a stream that inflates to less than ``len(out)`` fills what it makes.
    Corrupt data raises CorruptData; so does a stream of more than ``len(out)`` bytes
    under libdeflate, which the zlib fallback cuts at ``len(out)`` (callers check the
    length either way). ``window_bits`` is the window the zlib fallback allows (qemu
    writes and reads its clusters with 12, 4 KiB); libdeflate always allows 32 KiB, a
    superset. ``what`` names the data in the error. The GIL is released while it
    inflates. ``out`` must be writable; ``data`` may be any buffer (a read-only one is
    copied first under libdeflate).
    """
    source = memoryview(data).cast("B")
    if not len(source):
        raise CorruptData(f"{what} does not inflate: it is empty")
    if _libdeflate is not None:
        if source.readonly:
            source = memoryview(bytearray(source))
        return _libdeflate.inflate_into(source, out, what)
    zlib_mod = zlib_module()
    try:
        inflated = zlib_mod.decompressobj(-window_bits).decompress(source, len(out))
    except zlib_mod.error as exc:
        raise CorruptData(f"{what} does not inflate: {exc}") from exc
    out[: len(inflated)] = inflated
    return len(inflated)


def inflate_backend() -> str:
    """Which inflater :func:`inflate_raw_into` uses."""
    return "libdeflate" if _libdeflate is not None else gzip_backend()


class _ZngStream(ctypes.Structure):
    """zlib-ng's ``zng_stream`` (its native API, 2.x): where inflate reads and writes."""

    _fields_ = [
        ("next_in", ctypes.c_void_p),
        ("avail_in", ctypes.c_uint32),
        ("total_in", ctypes.c_size_t),
        ("next_out", ctypes.c_void_p),
        ("avail_out", ctypes.c_uint32),
        ("total_out", ctypes.c_size_t),
        ("msg", ctypes.c_char_p),
        ("state", ctypes.c_void_p),
        ("zalloc", ctypes.c_void_p),
        ("zfree", ctypes.c_void_p),
        ("opaque", ctypes.c_void_p),
        ("data_type", ctypes.c_int),
        ("adler", ctypes.c_uint32),
        ("reserved", ctypes.c_ulong),
    ]


class _ZlibNgInflate:
    """zlib-ng's streaming inflate, called through ctypes from the zlib-ng wheel.

    The wheel's own gzip reader copies its input, a chunk at a time, from the stream
    into a buffer of its own (``readinto``) under the GIL; here zlib-ng reads each
    read-ahead chunk where it lies. ctypes releases the GIL for each call.
    """

    OK, STREAM_END = 0, 1
    #: windowBits for a gzip member (16 + the largest window).
    GZIP_WINDOW = 16 + 15

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)  # already loaded: the same handle, nothing mapped again
        version = lib.zlibng_version
        version.argtypes = []
        version.restype = ctypes.c_char_p
        if not (version() or b"").startswith(b"2."):
            raise AttributeError("not zlib-ng 2.x: its zng_stream layout is unknown")
        stream = ctypes.POINTER(_ZngStream)
        self.init = lib.zng_inflateInit2
        self.init.argtypes = [stream, ctypes.c_int32]
        self.inflate = lib.zng_inflate
        self.inflate.argtypes = [stream, ctypes.c_int32]
        self.reset = lib.zng_inflateReset
        self.reset.argtypes = [stream]
        self.end = lib.zng_inflateEnd
        self.end.argtypes = [stream]
        for fn in (self.init, self.inflate, self.reset, self.end):
            fn.restype = ctypes.c_int32


_zng = _bind(_ZlibNgInflate, _zlib_ng)


def _pinned(data: Any) -> tuple[Any, int]:
    """``data`` as an object to keep alive while C reads it, and its address."""
    if isinstance(data, bytes):
        return data, ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0
    view = memoryview(data).cast("B")
    if view.readonly:
        return _pinned(bytes(view))
    return view, address(view)


class _GunzipReader(io.RawIOBase):
    """A gzip stream (members back to back, zero padding between them) inflated by
    zlib-ng straight into the caller's buffer.

    Input comes from ``raw.read``: a :class:`~vmdiskimage.streams.ReadAhead` hands over
    its chunks as they are, so no byte is copied on the way in either (2 MiB less
    memory for a compressed-qcow2 import). zlib checks each member's CRC-32 and length.
    """

    def __init__(self, raw: Any, zng: _ZlibNgInflate) -> None:
        super().__init__()
        self._raw = raw
        self._zng = zng
        self._stream = _ZngStream()
        self._ref = ctypes.byref(self._stream)
        self._input: Any = None  # what next_in points into, kept alive
        self._members = 0
        self._in_member = False
        self._open = False  # until zlib-ng has state to free
        if zng.init(self._ref, zng.GZIP_WINDOW) != zng.OK:
            raise MemoryError("zlib-ng could not set up an inflate stream")
        self._open = True

    def readable(self) -> bool:
        return True

    def _refill(self) -> bool:
        data = self._raw.read(READ_SIZE)
        if not data:
            self._input = None
            return False
        self._input, self._stream.next_in = _pinned(data)
        self._stream.avail_in = len(data)
        return True

    def _next_member(self) -> bool:
        """Whether a member starts at the input; zeros after a member are skipped."""
        stream, data = self._stream, self._input
        at = len(data) - stream.avail_in
        if self._members and data[at] == 0:
            rest = bytes(data[at:]).lstrip(b"\0")
            stream.next_in += stream.avail_in - len(rest)
            stream.avail_in = len(rest)
            if not rest:
                return False
        self._in_member = True
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._open:
            raise ValueError("read from a closed gzip stream")
        view = memoryview(buffer).cast("B")
        size = min(len(view), 0xFFFF_FFFF)
        if not size:
            return 0
        stream, zng = self._stream, self._zng
        stream.next_out, stream.avail_out = address(view), size
        while stream.avail_out:
            if not stream.avail_in and not self._refill():
                if self._in_member:
                    raise CorruptData("the gzip stream ends before its end marker")
                break
            if not self._in_member and not self._next_member():
                continue
            code = zng.inflate(self._ref, 0)
            if code == zng.STREAM_END:
                self._members += 1
                self._in_member = False
                zng.reset(self._ref)
            elif code != zng.OK:
                why = (stream.msg or b"").decode(errors="replace") or f"zlib-ng code {code}"
                raise CorruptData(f"the gzip stream is corrupt: {why}")
            if size - stream.avail_out and not stream.avail_in:
                break  # hand over what is made before waiting for more input
        return size - stream.avail_out

    def close(self) -> None:
        if self._open:
            self._open = False
            self._zng.end(self._ref)
            self._input = None
        super().close()


class _ErrorMapping(io.RawIOBase):
    """Turns each decoder's own exception types into :class:`CorruptData`."""

    def __init__(self, inner: Any, compression: str) -> None:
        super().__init__()
        self._inner = inner
        self._compression = compression

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return self._inner.readinto(buffer)
        except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
            if _is_ours(exc):
                raise
            raise CorruptData(f"the {self._compression} stream is corrupt: {exc}") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("zstandard") or "Zstd" in type(exc).__name__:
                raise CorruptData(f"the zstd stream is corrupt: {exc}") from exc
            raise

    def close(self) -> None:
        self._inner.close()
        super().close()


def _is_ours(exc: BaseException) -> bool:
    return isinstance(exc, VMDiskImageError)


class _XZReader(io.RawIOBase):
    """xz (concatenated streams too) through ``LZMADecompressor(memlimit=...)``.

    ``lzma.LZMAFile`` has no memory limit: a stream header asking for a 1.5 GiB
    dictionary gets one, filled as the data comes.
    """

    def __init__(self, raw: IO[bytes], memlimit: int = XZ_MEMORY_LIMIT) -> None:
        super().__init__()
        self._raw = raw
        self._memlimit = memlimit
        self._decoder = self._new_decoder()
        self._input = b""
        self._eof = False

    def _new_decoder(self) -> lzma.LZMADecompressor:
        return lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=self._memlimit)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._eof:
            if self._decoder.eof:
                rest = self._decoder.unused_data + self._input
                self._input = b""
                if not rest:
                    rest = self._raw.read(READ_SIZE)
                    if not rest:
                        self._eof = True
                        break
                # Another stream follows, as xz allows (stream padding is zeros).
                rest = rest.lstrip(b"\0")
                if not rest:
                    continue
                self._decoder = self._new_decoder()
                self._input = rest
            if self._decoder.needs_input and not self._input:
                self._input = self._raw.read(READ_SIZE)
                if not self._input:
                    raise CorruptData("the xz stream ends before its end marker")
            data = self._input
            self._input = b""
            try:
                out = self._decoder.decompress(data, max_length=len(view))
            except lzma.LZMAError as exc:
                if "memory" in str(exc).lower():
                    raise UnsupportedCompression(
                        f"the xz stream needs more than {self._memlimit >> 20} MiB of memory "
                        "to decompress (its dictionary); recompress it with xz -9 or lower"
                    ) from exc
                raise
            if out:
                view[: len(out)] = out
                return len(out)
        return 0

    def close(self) -> None:
        self._input = b""
        super().close()


def open_decompressed(raw: IO[bytes], compression: str) -> io.RawIOBase | IO[bytes]:
    """Wrap ``raw`` in a streaming decoder for ``compression`` (``none`` returns it as is)."""
    if compression == NONE:
        return raw
    if compression == GZIP:
        if _zng is not None:
            inner: Any = _GunzipReader(raw, _zng)
        elif _zlib_ng is not None:  # pragma: no cover - a build that hides its symbols
            inner = _zlib_ng._GzipReader(raw, READ_SIZE)
        else:
            inner = gzip.GzipFile(fileobj=raw, mode="rb")
    elif compression == ZSTD:
        import zstandard

        inner = zstandard.ZstdDecompressor().stream_reader(
            raw, read_size=READ_SIZE, read_across_frames=True, closefd=False
        )
    elif compression == XZ:
        inner = _XZReader(raw)
    else:
        raise UnsupportedCompression(f"compression {compression!r} is not supported")
    return _ErrorMapping(inner, compression)
