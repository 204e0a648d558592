# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""The tar walk: a streaming tar parser for containerDisk layers, bounded for hostile input.

Headers are parsed in Python, entry data goes straight into the caller's buffer. What a
walk may spend outside the disk's own data (entries, header and other files' bytes) is
capped by a :class:`TarBudget` shared by all layers of one image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import CorruptData, ImageLimitExceeded
from .streams import read_full

#: What a containerDisk import reads besides the disk file (upper layers, the rest of
#: the disk's layer): tar entries, and decompressed bytes of headers and other files.
#: A real image stays far below; a tar of empty headers would otherwise cost minutes.
MAX_OTHER_ENTRIES = 100_000
MAX_OTHER_BYTES = 1 << 30
#: pax and GNU long-name headers in front of one entry, all together. Real ones hold a
#: path and a few attributes; each is parsed as it comes and only the keys used kept.
MAX_METADATA_PER_ENTRY = 1 << 20
#: The pax keys the walk uses; ``GNU.sparse.*`` keys only mark the entry as sparse.
_PAX_KEYS = ("path", "linkpath", "size")

#: Bytes of a tar header block.
HEADER_SIZE = 512
_REGULAR = (b"0", b"\0", b"7")
_TYPE_NAMES = {
    b"1": "hard link",
    b"2": "symbolic link",
    b"3": "character device",
    b"4": "block device",
    b"6": "FIFO",
}


@dataclass
class TarEntry:
    """One entry's header, pax and long names applied."""

    name: str
    type: bytes
    size: int
    linkname: str = ""
    sparse: bool = False

    @property
    def is_regular(self) -> bool:
        return self.type in _REGULAR and not self.sparse

    @property
    def parts(self) -> list[str]:
        """The path's components, without empty and ``.`` ones (``..`` is kept)."""
        return [p for p in self.name.split("/") if p not in ("", ".")]

    @property
    def kind(self) -> str:
        """What the entry is, in words, for a message (``symbolic link``)."""
        if self.sparse:
            return "sparse tar entry"
        if self.type in _REGULAR:
            return "regular file"
        return _TYPE_NAMES.get(self.type, f"tar type {self.type!r}")


def _cstr(field_bytes: bytes) -> str:
    return field_bytes.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _number(field_bytes: bytes) -> int:
    if field_bytes[0] & 0x80:  # GNU base-256 for sizes over 8 GiB
        value = int.from_bytes(field_bytes[1:], "big")
        if field_bytes[0] & 0x40:
            raise CorruptData("negative number in a tar header")
        return value | ((field_bytes[0] & 0x3F) << (8 * (len(field_bytes) - 1)))
    text = field_bytes.replace(b"\0", b" ").strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError as exc:
        raise CorruptData(f"bad number {field_bytes!r} in a tar header") from exc


def _checksum_matches(block: bytes) -> bool:
    """Whether a header block's checksum field is the sum of its bytes (the field as spaces)."""
    return _number(block[148:156]) == sum(block) - sum(block[148:156]) + 8 * 32


def starts_a_tar(head: bytes) -> bool:
    """Whether ``head`` begins with a tar header: ``ustar`` at byte 257 and a right checksum.

    Every writer of image layers (Go's archive/tar, GNU tar, Python's tarfile) writes
    the ustar magic, in ustar, pax and GNU headers alike. A disk image does not start so:
    its first 512 bytes are a boot sector, a partition table, zeros or a format's header.
    """
    if len(head) < HEADER_SIZE or head[257:262] != b"ustar":
        return False
    try:
        return _checksum_matches(head[:HEADER_SIZE])
    except CorruptData:
        return False


def _parse_pax(data: bytes) -> dict[str, str]:
    """The records of a pax header that the walk uses (see :data:`_PAX_KEYS`)."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError as exc:
            raise CorruptData("malformed pax header in a layer") from exc
        if length <= 0:
            raise CorruptData("malformed pax header in a layer")
        record = data[space + 1 : pos + length - 1]
        key, _, value = record.partition(b"=")
        name = key.decode("utf-8", "replace")
        if name in _PAX_KEYS:
            records[name] = value.decode("utf-8", "surrogateescape")
        elif name.startswith("GNU.sparse"):
            records["GNU.sparse"] = ""
        pos += length
    return records


def _pax_size(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise CorruptData(f"pax size {text[:40]!r} in a layer is not a byte count")
    return int(text)


class TarBudget:
    """Entries and decompressed bytes a tar walk may spend outside the disk's data."""

    def __init__(
        self, max_entries: int = MAX_OTHER_ENTRIES, max_bytes: int = MAX_OTHER_BYTES
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.entries = 0
        self.bytes = 0

    def spend(self, entries: int, size: int) -> None:
        self.entries += entries
        self.bytes += size
        if self.entries > self.max_entries or self.bytes > self.max_bytes:
            raise ImageLimitExceeded(
                f"the image holds more than {self.max_entries} tar entries or "
                f"{self.max_bytes >> 20} MiB of files besides the disk; refusing to read on",
                max_entries=self.max_entries,
                max_bytes=self.max_bytes,
            )


class TarReader:
    """A minimal streaming tar parser: headers in Python, entry data straight to the caller.

    Understands ustar, GNU long names and pax headers (path, linkpath, size, sparse
    markers). Entry data is read through :meth:`readinto` with no extra copies.
    """

    def __init__(self, stream: Any, budget: TarBudget | None = None) -> None:
        self._stream = stream
        self._budget = budget or TarBudget()
        self._remaining = 0  # data bytes of the current entry not read yet
        self._padding = 0
        self._scratch = bytearray(1 << 20)
        self._block = bytearray(512)
        self.finished = False

    def _read_exact(self, buffer: Any, what: str) -> None:
        if read_full(self._stream, buffer) != len(buffer):
            raise CorruptData(f"the layer ends inside a tar {what}")

    def _skip(self, count: int, *, eof_ok: bool = False) -> bool:
        """Skip ``count`` bytes; False if the stream ended first and ``eof_ok``."""
        self._budget.spend(0, count)
        view = memoryview(self._scratch)
        while count:
            n = self._stream.readinto(view[: min(count, len(view))])
            if not n:
                if eof_ok:
                    return False
                raise CorruptData("the layer ends inside a tar entry")
            count -= n
        return True

    def _read_data(self, size: int) -> bytes:
        if size > 1 << 20:
            raise CorruptData(f"tar metadata entry of {size} bytes is implausibly large")
        self._budget.spend(0, size)
        data = bytearray(size)
        self._read_exact(data, "metadata entry")
        self._skip(-size % 512)
        return bytes(data)

    def next(self) -> TarEntry | None:
        """The next entry's header (skipping unread data of the current one), or None at end."""
        if self.finished:
            return None
        self._skip(self._remaining)
        # Some writers (umoci 0.4) end the archive right after the last entry's data.
        if not self._skip(self._padding, eof_ok=True):
            self.finished = True
            return None
        self._remaining = self._padding = 0
        pax: dict[str, str] = {}
        long_name = long_link = None
        metadata = 0
        while True:
            n = read_full(self._stream, self._block)
            if n == 0:
                self.finished = True  # tolerated: some writers omit the end-of-archive blocks
                return None
            if n != 512:
                raise CorruptData("the layer ends inside a tar header")
            self._budget.spend(1, 512)
            block = bytes(self._block)
            if block == bytes(512):
                self.finished = True
                return None
            if not _checksum_matches(block):
                raise CorruptData(
                    "a tar header checksum is wrong: the layer is not a tar or corrupt"
                )
            typeflag = block[156:157]
            size = _number(block[124:136])
            if typeflag in (b"L", b"K", b"x", b"g"):
                metadata += size
                if metadata > MAX_METADATA_PER_ENTRY:
                    raise ImageLimitExceeded(
                        f"more than {MAX_METADATA_PER_ENTRY >> 10} KiB of pax and long-name "
                        "headers precede one tar entry; refusing the layer"
                    )
            if typeflag == b"L":
                long_name = _cstr(self._read_data(size))
                continue
            if typeflag == b"K":
                long_link = _cstr(self._read_data(size))
                continue
            if typeflag == b"x":
                pax.update(_parse_pax(self._read_data(size)))
                continue
            if typeflag == b"g":
                self._read_data(size)
                continue
            name = _cstr(block[0:100])
            if block[257:263] == b"ustar\x00":
                prefix = _cstr(block[345:500])
                if prefix:
                    name = f"{prefix}/{name}"
            name = pax.get("path", long_name or name)
            linkname = pax.get("linkpath", long_link or _cstr(block[157:257]))
            if "size" in pax:
                size = _pax_size(pax["size"])
            sparse = "GNU.sparse" in pax or typeflag == b"S"
            has_data = typeflag not in (b"1", b"2", b"3", b"4", b"5", b"6")
            self._remaining = size if has_data else 0
            self._padding = -self._remaining % 512
            return TarEntry(name, typeflag, size, linkname, sparse)

    def readinto(self, buffer: Any) -> int:
        """Read the current entry's data; 0 at its end."""
        if not self._remaining:
            return 0
        view = memoryview(buffer).cast("B")
        if len(view) > self._remaining:
            view = view[: self._remaining]
        n = self._stream.readinto(view)
        if not n:
            raise CorruptData("the layer ends inside the disk file")
        self._remaining -= n
        return n

    def readable(self) -> bool:
        return True
