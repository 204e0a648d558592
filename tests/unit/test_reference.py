from __future__ import annotations

import pytest

from vmdiskimage.errors import InvalidReference
from vmdiskimage.reference import ImageReference

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest", "api_host"),
    [
        ("fedora", "docker.io", "library/fedora", "latest", None, "registry-1.docker.io"),
        ("docker.io/fedora:41", "docker.io", "library/fedora", "41", None, "registry-1.docker.io"),
        (
            "quay.io/containerdisks/fedora:41",
            "quay.io",
            "containerdisks/fedora",
            "41",
            None,
            "quay.io",
        ),
        ("localhost/a/b", "localhost", "a/b", "latest", None, "localhost"),
        (
            "127.0.0.1:5000/vms/disk:v1.0",
            "127.0.0.1:5000",
            "vms/disk",
            "v1.0",
            None,
            "127.0.0.1:5000",
        ),
        (f"reg:5000/vms/disk@{DIGEST}", "reg:5000", "vms/disk", None, DIGEST, "reg:5000"),
        (f"reg.io/d:t@{DIGEST}", "reg.io", "d", "t", DIGEST, "reg.io"),
        ("docker://quay.io/x/y:z", "quay.io", "x/y", "z", None, "quay.io"),
        ("user/repo", "docker.io", "user/repo", "latest", None, "registry-1.docker.io"),
        ("[::1]:5000/a:b", "[::1]:5000", "a", "b", None, "[::1]:5000"),
    ],
)
def test_parse(text, registry, repository, tag, digest, api_host):
    ref = ImageReference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )
    assert ref.api_host == api_host
    assert ref.ref == (digest or tag)
    assert ImageReference.parse(str(ref)) == ref


@pytest.mark.parametrize(
    "text",
    ["", "UPPER/case", "quay.io/a/b:bad tag", "a@sha256:abc", "quay.io/a//b", "a:" + "t" * 200],
)
def test_invalid(text):
    with pytest.raises(InvalidReference):
        ImageReference.parse(text)


def test_with_digest_pins():
    ref = ImageReference.parse("quay.io/a/b:1").with_digest(DIGEST)
    assert str(ref) == f"quay.io/a/b:1@{DIGEST}" and ref.ref == DIGEST
