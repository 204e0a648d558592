"""The standard proxy variables: HTTP_PROXY is used, NO_PROXY bypasses it; and proxies
that encode blob answers whatever the client asks."""

from __future__ import annotations

from pathlib import Path

import pytest
from urllib3.response import HTTPResponse

from tests.support.images import MiB, make_disk
from tests.support.proxy import ForwardProxy
from vmdiskimage import errors, push, sources
from vmdiskimage.populate import populate
from vmdiskimage.registry import RegistryClient

pytestmark = pytest.mark.registry

#: Content codings urllib3 has a decoder for here (zstd needs Python 3.14 or backports.zstd).
DECODABLE = frozenset(HTTPResponse.CONTENT_DECODERS)
PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy")


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with ForwardProxy() as server:
        monkeypatch.setenv("HTTP_PROXY", server.url)
        yield server


@pytest.fixture(scope="module")
def image(plain_registry, disks) -> str:
    """Pushed once, before (module scope) any test sets the proxy variables."""
    ref = f"{plain_registry.url}/proxy/disk:1"
    with plain_registry.client() as client:
        push.push(disks["raw"], ref, kind=sources.CONTAINER_DISK, comp="gzip", client=client)
    return ref


def test_http_proxy_carries_manifests_and_blobs(proxy, plain_registry, image, disks, tmp_path):
    populate(image, tmp_path / "disk.img", registry=plain_registry.options())

    assert (tmp_path / "disk.img").read_bytes() == disks["raw"].read_bytes()
    repository = f"{plain_registry.url}/v2/proxy/disk"
    assert f"GET {repository}/manifests/1" in proxy.seen
    assert any(line.startswith(f"GET {repository}/blobs/sha256:") for line in proxy.seen)


def test_no_proxy_bypasses_the_proxy(proxy, monkeypatch, plain_registry, image, disks, tmp_path):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")

    populate(image, tmp_path / "disk.img", registry=plain_registry.options())

    assert (tmp_path / "disk.img").read_bytes() == disks["raw"].read_bytes()
    assert proxy.seen == []


def test_blob_gets_ask_for_the_stored_bytes(proxy, plain_registry, image, tmp_path):
    """``Accept-Encoding: identity``: the digest and Range offsets are of the stored bytes."""
    populate(image, tmp_path / "disk.img", registry=plain_registry.options())

    blobs = proxy.blob_requests()
    assert blobs and all(h.get("Accept-Encoding") == "identity" for h in blobs)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "zstd", "compress"])
def test_a_proxy_that_encodes_blobs_anyway(proxy, plain_registry, image, disks, tmp_path, coding):
    """The proxy compresses blob answers whatever the client asked: the coding is undone
    before the digest check, or, where it cannot be (no decoder), refused by name.

    Before the fix the encoded bytes were hashed: DigestMismatch.
    """
    proxy.encoding = coding
    if coding in DECODABLE:
        result = populate(image, tmp_path / "disk.img", registry=plain_registry.options())
        assert (tmp_path / "disk.img").read_bytes() == disks["raw"].read_bytes()
        assert result.digest.startswith("sha256:")
        return
    with pytest.raises(errors.RegistryError, match=f"Content-Encoding {coding}.*identity"):
        populate(image, tmp_path / "disk.img", registry=plain_registry.options())


@pytest.fixture(scope="module")
def noise(plain_registry, tmp_path_factory) -> tuple[str, Path]:
    """An uncompressed 8 MiB artifact of random bytes: encoded, it stays 8 MiB."""
    disk = make_disk(tmp_path_factory.mktemp("noise") / "noise.raw", 8 * MiB, ((0, 8 * MiB),))
    ref = f"{plain_registry.url}/proxy/noise:1"
    with plain_registry.client() as client:
        push.push(disk, ref, kind=sources.ARTIFACT, comp="none", client=client)
    return ref, disk


def test_an_encoded_blob_broken_off_is_read_again_from_its_start(
    proxy, plain_registry, noise, tmp_path
):
    """A range of an encoded answer counts encoded bytes, and an encoded stream does not
    decode from its middle: the blob is read again, whole, and what was had is skipped."""
    ref, disk = noise
    proxy.encoding = "gzip"
    proxy.cuts = [5 * MiB]
    with RegistryClient(plain_registry.url, plain_registry.options(), backoff=0.01) as client:
        result = populate(ref, tmp_path / "disk.img", client=client)

    assert (tmp_path / "disk.img").read_bytes() == disk.read_bytes()
    assert result.resumes == 1
    ranges = [h.get("Range") for h in proxy.blob_requests()]
    # broken off; resumed at the offset reached (answered 206 and gzip); read again whole
    assert len(ranges) == 3 and ranges[0] is None and ranges[2] is None
    assert ranges[1] is not None and int(ranges[1].split("=")[1].rstrip("-")) >= MiB


def test_an_encoded_blob_broken_off_while_skipping_resumes_again(
    proxy, plain_registry, noise, tmp_path
):
    """The answer read again from the start breaks off too, before it reached the bytes
    already had: that is one more resume, not a crash (before: InternalError)."""
    ref, disk = noise
    proxy.encoding = "gzip"
    proxy.cuts = [5 * MiB, None, 2 * MiB]  # broken; the 206 (dropped); read again, broken
    with RegistryClient(plain_registry.url, plain_registry.options(), backoff=0.01) as client:
        result = populate(ref, tmp_path / "disk.img", client=client)

    assert (tmp_path / "disk.img").read_bytes() == disk.read_bytes()
    assert result.resumes == 2
