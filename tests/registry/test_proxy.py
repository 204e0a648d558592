"""The standard proxy variables: HTTP_PROXY is used, NO_PROXY bypasses it."""

from __future__ import annotations

import pytest

from tests.support.proxy import ForwardProxy
from vmdiskimage import push, sources
from vmdiskimage.populate import populate

pytestmark = pytest.mark.registry

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
