# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""Reading one blob: resumed with HTTP Range requests, its size and digest verified.

A :class:`BlobReader` is what :meth:`RegistryClient.open_blob
<vmdiskimage.registry.RegistryClient.open_blob>` returns. Its digest is checked at the
end of the stream: a mismatch raises :class:`~vmdiskimage.errors.DigestMismatch` where
the last ``readinto`` would return 0, so nothing downstream may report success before
the reader hit EOF.

Blobs are asked for as stored (``Accept-Encoding: identity``): the digest is of those
bytes, and Range offsets count them. A proxy may compress the answer anyway
(``Content-Encoding``); that coding is undone before the bytes are hashed, or refused by
name when there is no decoder for it.
"""

from __future__ import annotations

import http.client
import io
import logging
from typing import TYPE_CHECKING, Any

import requests
import urllib3

from .errors import DigestMismatch, RegistryError, RegistryUnavailable, redact
from .oci import DIGEST_ALGORITHMS
from .streams import CHUNK_SIZE, HashThread, ReadAhead

if TYPE_CHECKING:
    from .registry import RegistryClient

log = logging.getLogger(__name__)

#: Content codings a blob answer can arrive in and be undone (urllib3 decodes them; zstd
#: and br only where it has a decoder).
DECODABLE = frozenset(urllib3.response.HTTPResponse.CONTENT_DECODERS)

#: Errors of the transport under requests' streamed body (urllib3/http.client/socket).
STREAM_ERRORS = (
    OSError,
    http.client.HTTPException,
    urllib3.exceptions.HTTPError,
    requests.exceptions.RequestException,
)


class BlobReader(io.RawIOBase):
    """Streams one blob, resuming with Range requests and verifying size and digest at EOF.

    ``readinto`` raises :class:`DigestMismatch` instead of returning the final 0 when the
    bytes read do not hash to the digest. ``resumes`` counts resumed transfers.
    """

    def __init__(
        self,
        client: RegistryClient,
        repository: str,
        digest: str,
        size: int | None,
        *,
        max_resumes: int = 10,
    ) -> None:
        super().__init__()
        self.client = client
        self.repository = repository
        self.digest = digest
        self.size = size
        self.max_resumes = max_resumes
        self.resumes = 0
        self.offset = 0
        self.verified = False
        #: The content coding the last answer arrived in and was undone ("" for none).
        self.coding = ""
        self._from_start = False  # resume without Range: the path encodes answers
        algo, _, self._expected = digest.partition(":")
        self._hasher: Any = DIGEST_ALGORITHMS[algo]()
        self._resp: requests.Response | None = None
        self._fp: Any = None

    def readable(self) -> bool:
        return True

    def read_ahead(self, *, chunk_size: int = CHUNK_SIZE, depth: int = 4) -> ReadAhead:
        """This blob read in a thread of its own, ``depth`` chunks ahead, and hashed in
        another (the read-ahead hands every ``readinto`` a fresh buffer). Close the
        read-ahead, not the blob, when done."""
        if self.offset == 0 and not isinstance(self._hasher, HashThread):
            self._hasher = HashThread(self._hasher, name="blob-sha256")
        return ReadAhead(self, chunk_size=chunk_size, depth=depth, name="blob-read-ahead")

    def _get(self) -> requests.Response:
        headers = {"Accept-Encoding": "identity"}
        if self.offset and not self._from_start:
            headers["Range"] = f"bytes={self.offset}-"
        return self.client.request(
            "GET",
            f"/v2/{self.repository}/blobs/{self.digest}",
            scope=f"repository:{self.repository}:pull",
            headers=headers,
            stream=True,
            ok=(200, 206),
            what=f"blob {self.digest}",
        )

    def _open(self) -> None:
        resp = self._get()
        self.coding = _content_coding(resp)
        if self.coding and resp.status_code == 206:
            # The range counted encoded bytes, and an encoded stream does not decode from
            # its middle: read the blob again from its start, decoded, and skip.
            resp.close()
            log.warning(
                "blob %s resumed with Content-Encoding %s; reading it again from its start",
                self.digest,
                self.coding,
            )
            self._from_start = True
            resp = self._get()
            self.coding = _content_coding(resp)
        self._resp = resp  # closed by _drop() from here on, should the skip below break
        if self.coding:
            fp = self._decoding(resp)
        else:
            # The http.client response under urllib3 reads straight into our buffer.
            fp = resp.raw._fp if getattr(resp.raw, "_fp", None) is not None else resp.raw
        if self.offset and resp.status_code == 200:
            # Sent from the start: skip what we already have, without hashing it twice.
            skip = self.offset
            scratch = bytearray(min(skip, 1 << 20))
            while skip:
                n = fp.readinto(memoryview(scratch)[: min(skip, len(scratch))])
                if not n:
                    self._drop()
                    raise RegistryError(f"blob {self.digest} shrank while resuming")
                skip -= n
        elif resp.status_code == 206:
            start = resp.headers.get("Content-Range", "").removeprefix("bytes ").split("-")[0]
            if start != str(self.offset):
                self._drop()
                raise RegistryError(
                    f"registry resumed blob {self.digest} at {start!r}, not at {self.offset}"
                )
        self._fp = fp

    def _decoding(self, resp: requests.Response) -> Any:
        """The body of an answer a proxy encoded, decoded (urllib3 decodes as it reads)."""
        if not all(c.strip() in DECODABLE for c in self.coding.split(",")):
            self._drop()
            raise RegistryError(
                f"blob {self.digest} arrived with Content-Encoding {self.coding} although "
                f"the client asked for identity, and {self.coding} cannot be undone here "
                f"(only {', '.join(sorted(DECODABLE))}): a proxy between this client and "
                f"registry {self.client.registry} encodes it; let registry traffic pass "
                "unchanged"
            )
        log.info(
            "blob %s arrived with Content-Encoding %s (a proxy's); decoding it before the "
            "digest check",
            self.digest,
            self.coding,
        )
        resp.raw.decode_content = True
        return resp.raw

    def _drop(self) -> None:
        if self._resp is not None:
            self._resp.close()
        self._resp = None
        self._fp = None

    def _resume(self, why: object) -> None:
        self._drop()
        if self.resumes >= self.max_resumes:
            raise RegistryUnavailable(
                f"blob {self.digest} transfer broke {self.resumes + 1} times; last: {why}"
            )
        self.resumes += 1
        log.warning(
            "blob %s broke at byte %d (%s); resuming", self.digest, self.offset, redact(str(why))
        )
        self.client.sleep_backoff(min(self.resumes - 1, 4))

    def readinto(self, buffer: Any) -> int:
        if self.verified:
            return 0
        view = memoryview(buffer).cast("B")
        if self.size is not None:
            # Ask for one byte beyond the declared size at most, to notice oversized blobs.
            view = view[: max(1, min(len(view), self.size - self.offset + 1))]
        while True:
            try:
                if self._fp is None:
                    self._open()  # may break while it skips what was had
                n = self._fp.readinto(view)
            except urllib3.exceptions.DecodeError as exc:
                self._drop()
                raise RegistryError(
                    f"blob {self.digest} arrived with Content-Encoding {self.coding} that "
                    f"does not decode ({exc}): a proxy between this client and registry "
                    f"{self.client.registry} encodes it; let registry traffic pass unchanged"
                ) from exc
            except STREAM_ERRORS as exc:
                self._resume(exc)
                continue
            if n:
                self._hasher.update(view[:n])
                self.offset += n
                if self.size is not None and self.offset > self.size:
                    self._drop()
                    raise DigestMismatch(
                        f"blob {self.digest} is longer than the {self.size} bytes its "
                        "descriptor declares",
                        expected=self.digest,
                    )
                return n
            if self.size is not None and self.offset < self.size:
                self._resume(f"connection closed after {self.offset} of {self.size} bytes")
                continue
            self._drop()
            self._verify()
            return 0

    def _verify(self) -> None:
        actual = self._hasher.hexdigest()
        if actual != self._expected:
            decoded = (
                f" (after undoing the Content-Encoding {self.coding} it arrived in)"
                if self.coding
                else ""
            )
            raise DigestMismatch(
                f"blob {self.digest} from {self.client.registry}/{self.repository} is corrupt: "
                f"its content{decoded} hashes to {self._hasher.name}:{actual}; the import "
                "was stopped",
                expected=self.digest,
                actual=f"{self._hasher.name}:{actual}",
            )
        self.verified = True

    def close(self) -> None:
        self._drop()
        if isinstance(self._hasher, HashThread):
            self._hasher.close()
        super().close()


def _content_coding(resp: requests.Response) -> str:
    """The content coding of an answer, lower case; "" for none or identity."""
    coding = resp.headers.get("Content-Encoding", "").strip().lower()
    return "" if coding == "identity" else coding
