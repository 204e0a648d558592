# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""A small OCI distribution client: manifests, indexes, blobs, push.

One :class:`RegistryClient` talks to one registry host. It handles anonymous, basic
and bearer-token auth (the WWW-Authenticate realm/service/scope exchange), custom CA
bundles, and retries with exponential backoff (or, for 429 and 503, as long as the
registry's ``Retry-After`` says, within a cap). A CA bundle is trusted on top of the
default roots, never instead of them: blob GETs are often redirected to public object
storage. The documents it fetches are modelled
in :mod:`vmdiskimage.oci`; blobs are read through :class:`~vmdiskimage.blobs.BlobReader`,
resumed and verified.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from . import __version__
from .auth import Challenge, Credentials, credentials_for, load_docker_config, parse_challenge
from .blobs import STREAM_ERRORS, BlobReader
from .errors import (
    AccessDenied,
    AuthenticationFailed,
    DigestMismatch,
    ImageNotFound,
    InvalidArgument,
    PlatformNotFound,
    RegistryError,
    RegistryUnavailable,
    TLSFailure,
    UnsupportedManifest,
    redact,
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
    select_manifest,
)
from .reference import ImageReference, validate_digest

log = logging.getLogger(__name__)

ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST))

MAX_MANIFEST_BYTES = 4 << 20
#: A token answer is a JWT or two in JSON: a few KiB. Read no more than this of it.
MAX_TOKEN_RESPONSE_BYTES = 1 << 20
USER_AGENT = f"vmdiskimage/{__version__}"

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
    except STREAM_ERRORS:
        return ""
    return data.decode("utf-8", "replace")


@dataclass(frozen=True)
class RegistryOptions:
    """How to reach a registry, as the user says: credentials, trust and transport."""

    #: A dockerconfigjson file (``.dockerconfigjson`` of a pull secret, an authfile).
    docker_config: str | Path | None = None
    #: CA certificates (PEM) trusted in addition to the default roots.
    ca_file: str | Path | None = None
    #: Talk HTTP, not HTTPS (test registries).
    plain_http: bool = False
    #: Verify the registry's certificate; False is an explicit, insecure opt-in.
    tls_verify: bool = True


DEFAULT_OPTIONS = RegistryOptions()


class _AddedTrust(HTTPAdapter):
    """HTTPS that trusts the CA certificates of ``ca_file`` as well as the default roots.

    The context holds the CA; requests loads its default roots (certifi's bundle, or
    ``REQUESTS_CA_BUNDLE``) into the same context for each connection it verifies, so
    both the registry with a private CA and the public object storage its blob GETs
    redirect to verify.
    """

    def __init__(self, ca_file: str | Path) -> None:
        self.context = urllib3.util.create_urllib3_context()
        try:
            self.context.load_verify_locations(cafile=str(ca_file))
        except OSError as exc:  # ssl.SSLError too: no PEM certificate in the file
            raise InvalidArgument(
                f"CA bundle {ca_file} cannot be used: {exc}; give a file of PEM certificates"
            ) from exc
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, ssl_context=self.context, **kwargs)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        return super().proxy_manager_for(proxy, ssl_context=self.context, **kwargs)


class RegistryClient:
    """Client for one registry host (``host[:port]``); see the module docstring."""

    def __init__(
        self,
        registry: str,
        options: RegistryOptions = DEFAULT_OPTIONS,
        *,
        credentials: Credentials | None = None,
        repository: str = "",
        retries: int = 5,
        backoff: float = 0.5,
        timeout: float = 60.0,
        max_wait: float = DEFAULT_MAX_WAIT,
        on_wait: Callable[[str | None], None] | None = None,
    ) -> None:
        """A client for ``registry``; ``credentials`` default to the entry of
        ``options.docker_config`` that covers ``repository`` (a key may name a repository
        path; "" matches registry-wide keys only), anonymous without one."""
        self.registry = registry
        self.api_host = ImageReference(registry, "x").api_host
        if credentials is None and options.docker_config:
            config = load_docker_config(options.docker_config)
            credentials = credentials_for(registry, config, repository)
        self.credentials = credentials
        self.plain_http = options.plain_http
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
        self.verify = options.tls_verify
        if not options.tls_verify:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        elif options.ca_file:
            self.session.mount("https://", _AddedTrust(options.ca_file))
        self._auth: dict[str, str] = {}  # scope -> Authorization header value
        self._basic = False

    @classmethod
    def for_reference(
        cls, reference: ImageReference, options: RegistryOptions = DEFAULT_OPTIONS, **kwargs: Any
    ) -> RegistryClient:
        """A client for ``reference``'s registry, with the credentials for its repository
        (``kwargs`` as for the constructor)."""
        return cls(reference.registry, options, repository=reference.repository, **kwargs)

    @property
    def base_url(self) -> str:
        return f"{'http' if self.plain_http else 'https'}://{self.api_host}"

    def close(self) -> None:
        self.session.close()

    def sleep_backoff(self, attempt: int) -> None:
        """Wait before retry number ``attempt`` (from 0): exponential, at most 10 s."""
        time.sleep(min(self.backoff * (2**attempt), 10.0))

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
        except (requests.exceptions.RequestException, *STREAM_ERRORS) as exc:
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
        what = what or redact(url)
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
                who, redirected = self._who(exc.request.url if exc.request else url)
                advice = (
                    "the default roots must trust its certificate (a CA bundle adds to them)"
                    if redirected
                    else "give the registry's CA bundle, or opt in to skipping verification"
                )
                raise TLSFailure(f"TLS verification of {who} failed ({exc}); {advice}") from exc
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                who, _ = self._who(exc.request.url if exc.request else url)
                if attempt >= self.retries:
                    raise RegistryUnavailable(
                        f"{who} unreachable for {what} after {attempt + 1} attempts: {exc}"
                    ) from exc
                log.warning("%s %s failed (%s); retrying", method, redact(url), redact(str(exc)))
                self.sleep_backoff(attempt)
                attempt += 1
                continue
            if resp.status_code in ok:
                return resp
            who, redirected = self._who(resp.url)
            # A streamed body is read no further than a message needs (it may be a bomb).
            # Object storage quotes the signed request in its error bodies: not shown.
            error_text = "" if redirected else (_error_text(resp) if stream else resp.text[:300])
            resp.close()
            if resp.status_code == 401:
                challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
                if refreshed:
                    self._refused(challenge, what)
                self._authorize(challenge, scope)
                refreshed = True
                continue
            if resp.status_code == 403:
                expired = "; the signed URL it was given may have expired" if redirected else ""
                raise AccessDenied(f"{who} denied access to {what} (HTTP 403){expired}")
            if resp.status_code == 404:
                raise ImageNotFound(f"{what} not found in registry {self.registry}")
            told = retry_after(resp.headers.get("Retry-After"))
            if resp.status_code in _TOLD_TO_WAIT and told is not None:
                self._wait_as_told(resp.status_code, told, what)
                continue
            if resp.status_code in _RETRY_STATUS and attempt < self.retries:
                log.warning("%s %s answered %s; retrying", method, redact(url), resp.status_code)
                self.sleep_backoff(attempt)
                attempt += 1
                continue
            raise RegistryError(
                f"{who} answered HTTP {resp.status_code} for {what}"
                + (f": {error_text}" if error_text else "")
            )

    def _who(self, url: str | None) -> tuple[str, bool]:
        """Who a request to ``url`` went to, for a message, and whether it is elsewhere
        than the registry (object storage the registry redirected a blob GET to)."""
        host = urlsplit(url or "").netloc
        if not host or host == self.api_host:
            return f"registry {self.registry}", False
        return f"{host}, where registry {self.registry} redirected the request,", True

    def _refused(self, challenge: Challenge, what: str) -> None:
        """Raise what a 401 after authorizing means (RFC 6750 error codes)."""
        if challenge.params.get("error") == "insufficient_scope":
            # Docker Hub's answer for a repository that does not exist, as for one the
            # token does not cover: the registry will not say which.
            if self.credentials is None:
                raise ImageNotFound(
                    f"{what} not found in registry {self.registry}, or not authorized: "
                    "the registry lets anonymous clients read no such repository (HTTP 401 "
                    "insufficient_scope); check the name, or give a pull secret"
                )
            raise AccessDenied(
                f"{what} not found in registry {self.registry}, or not authorized for user "
                f"{self.credentials.username!r} (HTTP 401 insufficient_scope)"
            )
        raise AuthenticationFailed(
            f"registry {self.registry} refused the credentials for {what} (HTTP 401)"
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
        chosen = select_manifest(entries, platform)
        if chosen is not None and not chosen.platform:
            log.info(
                "index %s has no entry for platform %s; using %s, which names no platform",
                top.digest,
                platform,
                chosen.digest,
            )
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
