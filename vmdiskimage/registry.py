# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""A small OCI distribution client: manifests, indexes, streamed and verified blobs, push.

One :class:`RegistryClient` talks to one registry host. It handles anonymous, basic
and bearer-token auth (the WWW-Authenticate realm/service/scope exchange), custom CA
bundles, retries with exponential backoff (or, for 429 and 503, as long as the
registry's ``Retry-After`` says, within a cap), and resumes broken blob downloads with HTTP
Range requests. Every blob read through :class:`BlobReader` is checked against its
digest; a mismatch raises :class:`~vmdiskimage.errors.DigestMismatch` at the end of the
stream, so nothing downstream may report success before the reader hit EOF.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import http.client
import io
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin

import requests
import urllib3

from . import __version__
from .auth import Challenge, Credentials, credentials_for, load_docker_config, parse_challenge
from .errors import (
    AccessDenied,
    AuthenticationFailed,
    DigestMismatch,
    ImageNotFound,
    PlatformNotFound,
    RegistryError,
    RegistryUnavailable,
    TLSFailure,
    UnsupportedManifest,
)
from .oci import (
    DEFAULT_PLATFORM,
    DIGEST_ALGORITHMS,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    Platform,
    ResolvedImage,
    content_digest,
)
from .reference import ImageReference, validate_digest

log = logging.getLogger(__name__)

ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST))

MAX_MANIFEST_BYTES = 4 << 20
#: A token answer is a JWT or two in JSON: a few KiB. Read no more than this of it.
MAX_TOKEN_RESPONSE_BYTES = 1 << 20
USER_AGENT = f"vmdiskimage/{__version__}"

# Errors of the transport under requests' streamed body (urllib3/http.client/socket).
_STREAM_ERRORS = (
    OSError,
    http.client.HTTPException,
    urllib3.exceptions.HTTPError,
    requests.exceptions.RequestException,
)
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: Answers whose ``Retry-After`` the client obeys (RFC 9110 §10.2.3; RFC 6585 §4).
_TOLD_TO_WAIT = frozenset({429, 503})
#: The longest one ``Retry-After`` is obeyed for; a longer one is cut to this.
RETRY_AFTER_CAP = 60.0
#: Seconds a client waits in all, as registries tell it, before it gives up.
DEFAULT_MAX_WAIT = 600.0


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def read_capped(resp: requests.Response, limit: int) -> bytes | None:
    """Up to ``limit`` bytes of a streamed body, decompressed as it arrives; None if longer.

    ``resp.content`` and ``resp.json()`` would inflate a gzip bomb whole.
    """
    with resp:
        data = resp.raw.read(limit + 1, decode_content=True)
    return None if len(data) > limit else data


def _error_text(resp: requests.Response) -> str:
    """The start of an error answer's body, for a message."""
    try:
        with resp:
            data = resp.raw.read(300, decode_content=True)
    except _STREAM_ERRORS:
        return ""
    return data.decode("utf-8", "replace")


def _sleep_backoff(attempt: int, base: float) -> None:
    time.sleep(min(base * (2**attempt), 10.0))


class RegistryClient:
    """Client for one registry host (``host[:port]``); see the module docstring."""

    def __init__(
        self,
        registry: str,
        *,
        credentials: Credentials | None = None,
        ca_file: str | Path | None = None,
        plain_http: bool = False,
        tls_verify: bool = True,
        retries: int = 5,
        backoff: float = 0.5,
        timeout: float = 60.0,
        max_wait: float = DEFAULT_MAX_WAIT,
        on_wait: Callable[[str | None], None] | None = None,
    ) -> None:
        self.registry = registry
        self.api_host = ImageReference(registry, "x").api_host
        self.credentials = credentials
        self.plain_http = plain_http
        self.retries = retries
        self.backoff = backoff
        self.timeout = (min(timeout, 15.0), timeout)
        self.max_wait = max_wait
        #: Told a wait's message when one starts and None when it ends (for progress).
        self.on_wait = on_wait
        self.waited = 0.0  # seconds spent waiting as registries told
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        # Passed on every request: a session-level setting loses to REQUESTS_CA_BUNDLE.
        self.verify: bool | str = True
        if not tls_verify:
            self.verify = False
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        elif ca_file:
            self.verify = str(ca_file)
        self._auth: dict[str, str] = {}  # scope -> Authorization header value
        self._basic = False

    @classmethod
    def for_reference(
        cls,
        reference: ImageReference,
        *,
        docker_config: str | Path | None = None,
        **kwargs: Any,
    ) -> RegistryClient:
        """A client for ``reference``'s registry, with credentials from a dockerconfigjson file."""
        creds = None
        if docker_config:
            creds = credentials_for(reference.registry, load_docker_config(docker_config))
        return cls(reference.registry, credentials=creds, **kwargs)

    @property
    def base_url(self) -> str:
        return f"{'http' if self.plain_http else 'https'}://{self.api_host}"

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------

    def _authorize(self, challenge: Challenge, scope: str) -> None:
        if challenge.scheme == "basic":
            if not self.credentials:
                raise AuthenticationFailed(
                    f"registry {self.registry} requires credentials and none were given"
                )
            self._basic = True
            return
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            raise AuthenticationFailed(
                f"registry {self.registry} asks for unsupported authentication {challenge.scheme!r}"
            )
        params = {"scope": challenge.params.get("scope") or scope}
        if "service" in challenge.params:
            params["service"] = challenge.params["service"]
        realm = challenge.params["realm"]
        auth = None
        if self.credentials:
            # The realm is whatever the registry names: the password crosses to it in
            # clear unless it is HTTPS, which only a registry opted into plain HTTP skips.
            if not realm.lower().startswith("https://") and not self.plain_http:
                raise AuthenticationFailed(
                    f"registry {self.registry} sends clients to the token server {realm}, "
                    "which is not HTTPS; the pull secret's password is not sent in clear"
                )
            auth = (self.credentials.username, self.credentials.password)
        body: bytes | None = None
        try:
            resp = self.session.get(
                realm,
                params=params,
                auth=auth,
                timeout=self.timeout,
                verify=self.verify,
                stream=True,
            )
            if resp.status_code == 200:
                body = read_capped(resp, MAX_TOKEN_RESPONSE_BYTES)
            else:
                resp.close()
        except requests.exceptions.SSLError as exc:
            raise TLSFailure(f"TLS verification of token server {realm} failed: {exc}") from exc
        except (requests.exceptions.RequestException, *_STREAM_ERRORS) as exc:
            raise RegistryUnavailable(f"token server {realm} unreachable: {exc}") from exc
        if resp.status_code in (401, 403):
            who = f"user {self.credentials.username!r}" if self.credentials else "anonymous access"
            raise AuthenticationFailed(
                f"token server {realm} refused {who} for {params['scope']} "
                f"(HTTP {resp.status_code}); check the pull secret's user name and password"
            )
        if resp.status_code != 200:
            raise RegistryError(f"token server {realm} answered HTTP {resp.status_code}")
        if body is None:
            raise RegistryError(
                f"token server {realm} answered more than {MAX_TOKEN_RESPONSE_BYTES >> 10} KiB; "
                "a token answer is a few KiB"
            )
        try:
            document = json.loads(body)
            token = document.get("token") or document.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token or not isinstance(token, str):
            raise RegistryError(f"token server {realm} answered without a token")
        self._auth[scope] = f"Bearer {token}"

    def _auth_header(self, scope: str) -> str | None:
        if self._basic and self.credentials:
            raw = f"{self.credentials.username}:{self.credentials.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        return self._auth.get(scope)

    def request(
        self,
        method: str,
        url: str,
        *,
        scope: str,
        headers: dict[str, str] | None = None,
        body: Callable[[], Any] | bytes | None = None,
        stream: bool = False,
        ok: Iterable[int] = (200,),
        what: str = "",
    ) -> requests.Response:
        """Send one request with auth, retries and error mapping; ``url`` may be a path."""
        if url.startswith("/"):
            url = self.base_url + url
        ok = tuple(ok)
        what = what or url
        refreshed = False
        attempt = 0
        while True:
            hdrs = dict(headers or {})
            auth = self._auth_header(scope)
            if auth:
                hdrs["Authorization"] = auth
            data = body() if callable(body) else body
            try:
                resp = self.session.request(
                    method,
                    url,
                    headers=hdrs,
                    data=data,
                    stream=stream,
                    timeout=self.timeout,
                    verify=self.verify,
                )
            except requests.exceptions.SSLError as exc:
                raise TLSFailure(
                    f"TLS verification of {self.registry} failed ({exc}); give the registry's CA "
                    "bundle, or opt in to skipping verification"
                ) from exc
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                if attempt >= self.retries:
                    raise RegistryUnavailable(
                        f"registry {self.registry} unreachable for {what} after "
                        f"{attempt + 1} attempts: {exc}"
                    ) from exc
                log.warning("%s %s failed (%s); retrying", method, url, exc)
                _sleep_backoff(attempt, self.backoff)
                attempt += 1
                continue
            if resp.status_code in ok:
                return resp
            # A streamed body is read no further than a message needs (it may be a bomb).
            error_text = _error_text(resp) if stream else resp.text[:300]
            resp.close()
            if resp.status_code == 401:
                if refreshed:
                    raise AuthenticationFailed(
                        f"registry {self.registry} refused the credentials for {what} (HTTP 401)"
                    )
                header = resp.headers.get("WWW-Authenticate", "")
                self._authorize(parse_challenge(header), scope)
                refreshed = True
                continue
            if resp.status_code == 403:
                raise AccessDenied(f"registry {self.registry} denied access to {what} (HTTP 403)")
            if resp.status_code == 404:
                raise ImageNotFound(f"{what} not found in registry {self.registry}")
            told = retry_after(resp.headers.get("Retry-After"))
            if resp.status_code in _TOLD_TO_WAIT and told is not None:
                self._wait_as_told(resp.status_code, told, what)
                continue
            if resp.status_code in _RETRY_STATUS and attempt < self.retries:
                log.warning("%s %s answered %s; retrying", method, url, resp.status_code)
                _sleep_backoff(attempt, self.backoff)
                attempt += 1
                continue
            raise RegistryError(
                f"registry {self.registry} answered HTTP {resp.status_code} for {what}: "
                f"{error_text}"
            )

    def _wait_as_told(self, status: int, seconds: float, what: str) -> None:
        """Sleep as a 429 or 503 answer's Retry-After asks, within the caps; say so."""
        seconds = min(max(seconds, self.backoff), RETRY_AFTER_CAP)  # "0" must not spin
        if self.waited + seconds > self.max_wait:
            raise RegistryUnavailable(
                f"registry {self.registry} kept answering HTTP {status} for {what}: waited "
                f"{self.waited:.0f} s in all as its Retry-After asked; giving up after "
                f"{self.max_wait:.0f} s"
            )
        message = (
            f"registry {self.registry} answered HTTP {status} "
            f"({http.client.responses.get(status, 'busy')}) for {what}; waiting "
            f"{seconds:.0f} s as its Retry-After asks"
        )
        log.warning("%s", message)
        if self.on_wait is not None:
            self.on_wait(message)
        time.sleep(seconds)
        self.waited += seconds
        if self.on_wait is not None:
            self.on_wait(None)

    # -- manifests ---------------------------------------------------------------

    def get_manifest(self, repository: str, ref: str) -> Manifest:
        """Fetch a manifest or index by tag or digest; a digest is verified."""
        resp = self.request(
            "GET",
            f"/v2/{repository}/manifests/{ref}",
            scope=f"repository:{repository}:pull",
            headers={"Accept": ACCEPT},
            stream=True,
            what=f"manifest {repository}:{ref}",
        )
        with resp:
            raw = resp.raw.read(MAX_MANIFEST_BYTES + 1, decode_content=True)
        if len(raw) > MAX_MANIFEST_BYTES:
            raise UnsupportedManifest(f"manifest {repository}:{ref} is larger than 4 MiB")
        manifest = Manifest.from_bytes(raw, resp.headers.get("Content-Type"))
        pinned = ref if ":" in ref else None
        expected = pinned or resp.headers.get("Docker-Content-Digest")
        if expected and (pinned or expected.split(":", 1)[0] in DIGEST_ALGORITHMS):
            # A pin is always checked, with the algorithm it names; the header of a tag
            # fetch only when it names one we know (our own sha256 is what we report).
            actual = content_digest(raw, expected.split(":", 1)[0])
            if actual != expected:
                raise DigestMismatch(
                    f"manifest {repository}:{ref} from {self.registry} is corrupt: expected "
                    f"{expected}, its content hashes to {actual}",
                    expected=expected,
                    actual=actual,
                )
        return manifest

    def resolve(
        self, reference: ImageReference, platform: Platform | str | None = None
    ) -> ResolvedImage:
        """Fetch the manifest of ``reference``, choosing ``platform`` from an index."""
        if isinstance(platform, str):
            platform = Platform.parse(platform)
        platform = platform or DEFAULT_PLATFORM
        top = self.get_manifest(reference.repository, reference.ref)
        if not top.is_index:
            return ResolvedImage(reference.with_digest(top.digest), top)
        entries = top.manifests
        chosen = next((d for d in entries if platform.matches(d.platform)), None)
        if chosen is None:
            have = ", ".join(str(Platform.from_spec(d.platform)) for d in entries if d.platform)
            raise PlatformNotFound(
                f"image {reference} has no manifest for platform {platform} "
                f"(it has: {have or 'none'})",
                platform=str(platform),
            )
        child = self.get_manifest(reference.repository, chosen.digest)
        if child.is_index:
            raise UnsupportedManifest(f"index {top.digest} nests another index")
        return ResolvedImage(reference.with_digest(child.digest), child, top.digest, platform)

    def put_manifest(self, repository: str, ref: str, raw: bytes, media_type: str) -> str:
        """Upload a manifest under a tag (or its digest); return its digest."""
        self.request(
            "PUT",
            f"/v2/{repository}/manifests/{ref}",
            scope=f"repository:{repository}:pull,push",
            headers={"Content-Type": media_type},
            body=raw,
            ok=(200, 201),
            what=f"manifest upload {repository}:{ref}",
        )
        return content_digest(raw, "sha256")

    # -- blobs -------------------------------------------------------------------

    def open_blob(
        self, repository: str, digest: str, size: int | None = None, *, max_resumes: int = 10
    ) -> BlobReader:
        """A verifying, resuming reader for one blob; close it when done."""
        return BlobReader(self, repository, validate_digest(digest), size, max_resumes=max_resumes)

    def get_blob_bytes(
        self, repository: str, descriptor: Descriptor, limit: int = 4 << 20
    ) -> bytes:
        """Fetch a small blob (a config) whole, verified."""
        if descriptor.size > limit:
            raise UnsupportedManifest(f"blob {descriptor.digest} is larger than {limit} bytes")
        with self.open_blob(repository, descriptor.digest, descriptor.size) as blob:
            return blob.read()

    def blob_exists(self, repository: str, digest: str) -> bool:
        try:
            self.request(
                "HEAD",
                f"/v2/{repository}/blobs/{digest}",
                scope=f"repository:{repository}:pull,push",
                what=f"blob {digest}",
            )
        except ImageNotFound:
            return False
        return True

    def upload_blob(
        self, repository: str, digest: str, size: int, opener: Callable[[], IO[bytes]]
    ) -> None:
        """Upload a blob in one PUT unless the registry has it; ``opener`` reopens the data."""
        if self.blob_exists(repository, digest):
            return
        scope = f"repository:{repository}:pull,push"
        resp = self.request(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            scope=scope,
            ok=(202,),
            what=f"blob upload start {repository}",
        )
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {self.registry} started an upload without a Location")
        url = urljoin(self.base_url + "/", location)
        url += ("&" if "?" in url else "?") + f"digest={digest}"
        self.request(
            "PUT",
            url,
            scope=scope,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            body=opener,
            ok=(201,),
            what=f"blob upload {digest}",
        )


class _HashThread:
    """A hash object whose ``update`` runs in its own thread (sha256 releases the GIL).

    Only for callers that never reuse a buffer after passing it to ``update``.
    """

    def __init__(self, hasher: Any, depth: int = 4) -> None:
        self._hasher = hasher
        self.name = hasher.name
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name="blob-sha256", daemon=True)
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
        algo, _, self._expected = digest.partition(":")
        self._hasher: Any = DIGEST_ALGORITHMS[algo]()
        self._resp: requests.Response | None = None
        self._fp: Any = None

    def readable(self) -> bool:
        return True

    def hash_in_thread(self) -> None:
        """Hash in a separate thread; the caller promises fresh buffers to ``readinto``."""
        if self.offset == 0 and not isinstance(self._hasher, _HashThread):
            self._hasher = _HashThread(self._hasher)

    def _open(self) -> None:
        headers = {"Range": f"bytes={self.offset}-"} if self.offset else {}
        resp = self.client.request(
            "GET",
            f"/v2/{self.repository}/blobs/{self.digest}",
            scope=f"repository:{self.repository}:pull",
            headers=headers,
            stream=True,
            ok=(200, 206),
            what=f"blob {self.digest}",
        )
        if self.offset and resp.status_code == 200:
            # The server ignored Range: skip what we already have, without hashing it twice.
            skip = self.offset
            while skip:
                chunk = resp.raw.read(min(skip, 1 << 20))
                if not chunk:
                    resp.close()
                    raise RegistryError(f"blob {self.digest} shrank while resuming")
                skip -= len(chunk)
        elif resp.status_code == 206:
            start = resp.headers.get("Content-Range", "").removeprefix("bytes ").split("-")[0]
            if start != str(self.offset):
                resp.close()
                raise RegistryError(
                    f"registry resumed blob {self.digest} at {start!r}, not at {self.offset}"
                )
        self._resp = resp
        # The http.client response under urllib3 reads straight into our buffer.
        self._fp = resp.raw._fp if getattr(resp.raw, "_fp", None) is not None else resp.raw

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
        log.warning("blob %s broke at byte %d (%s); resuming", self.digest, self.offset, why)
        _sleep_backoff(min(self.resumes - 1, 4), self.client.backoff)

    def readinto(self, buffer: Any) -> int:
        if self.verified:
            return 0
        view = memoryview(buffer).cast("B")
        if self.size is not None:
            # Ask for one byte beyond the declared size at most, to notice oversized blobs.
            view = view[: max(1, min(len(view), self.size - self.offset + 1))]
        while True:
            if self._fp is None:
                self._open()
            try:
                n = self._fp.readinto(view)
            except _STREAM_ERRORS as exc:
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
            raise DigestMismatch(
                f"blob {self.digest} from {self.client.registry}/{self.repository} is corrupt: "
                f"its content hashes to {self._hasher.name}:{actual}; the import was stopped",
                expected=self.digest,
                actual=f"{self._hasher.name}:{actual}",
            )
        self.verified = True

    def drain(self, bufsize: int = 1 << 20) -> None:
        """Read to the end (verifying the digest)."""
        buf = bytearray(bufsize)
        while self.readinto(buf):
            pass

    def close(self) -> None:
        self._drop()
        if isinstance(self._hasher, _HashThread):
            self._hasher.close()
        super().close()


class ReadAhead(io.RawIOBase):
    """Reads a :class:`BlobReader` in a background thread, ``depth`` chunks ahead.

    Receiving and hashing (both release the GIL) then overlap with decompression and
    writing in the caller's thread. Memory stays bounded at ``depth * chunk_size``.
    Errors of the reader (including the digest check at EOF) are raised to the caller
    when it reaches the point where they happened.
    """

    _EOF = object()

    def __init__(self, blob: BlobReader, *, chunk_size: int = 1 << 20, depth: int = 4) -> None:
        super().__init__()
        self.blob = blob
        self._chunk_size = chunk_size
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._current = memoryview(b"")
        self._done = False
        blob.hash_in_thread()  # every chunk below is a fresh bytearray
        self._thread = threading.Thread(target=self._run, name="blob-read-ahead", daemon=True)
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
                n = self.blob.readinto(buf)
                if not n:
                    self._put(self._EOF)
                    return
                # A view, not a resize: the hash thread may still hold the buffer.
                if not self._put(memoryview(buf)[:n] if n < len(buf) else buf):
                    return
        except BaseException as exc:  # handed to the consumer thread
            self._put(exc)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not len(self._current):
            if self._done:
                return 0
            item = self._queue.get()
            if item is self._EOF:
                self._done = True
                return 0
            if isinstance(item, BaseException):
                self._done = True
                raise item
            self._current = memoryview(item)
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._current))
        view[:n] = self._current[:n]
        self._current = self._current[n:]
        return n

    def read(self, size: int = -1) -> bytes:
        # zstandard and lzma pull with read(): hand over whole chunks without a copy.
        if not len(self._current) and not self._done:
            item = self._queue.get()
            if item is self._EOF:
                self._done = True
                return b""
            if isinstance(item, BaseException):
                self._done = True
                raise item
            self._current = memoryview(item)
        if size is None or size < 0 or size >= len(self._current):
            view, self._current = self._current, memoryview(b"")
            # A whole chunk is handed over as is; zstandard and lzma take any buffer.
            return view.obj if len(view) == len(view.obj) else view.tobytes()  # type: ignore[return-value]
        data = self._current[:size].tobytes()
        self._current = self._current[size:]
        return data

    @property
    def resumes(self) -> int:
        return self.blob.resumes

    @property
    def verified(self) -> bool:
        return self.blob.verified

    def drain(self) -> None:
        """Read to the end, so the blob's digest is checked (raises on mismatch)."""
        buf = bytearray(1 << 20)
        while self.readinto(buf):
            pass

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.1)
        self._thread.join()
        self.blob.close()
        super().close()
