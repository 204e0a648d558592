"""The OCI model: platform names, manifests, digests."""

from __future__ import annotations

import pytest

from vmdiskimage import errors
from vmdiskimage.oci import OCI_INDEX, OCI_MANIFEST, Manifest, Platform, content_digest

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ({"os": "linux", "architecture": "amd64"}, "linux/amd64"),
        ({"os": "linux", "architecture": "arm64", "variant": "v8"}, "linux/arm64/v8"),
        ({"architecture": "s390x"}, "?/s390x"),
    ],
)
def test_platform_from_spec(spec, name):
    assert str(Platform.from_spec(spec)) == name


@pytest.mark.parametrize(
    ("text", "platform"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
    ],
)
def test_platform_parse(text, platform):
    assert Platform.parse(text) == platform
    assert str(platform) == text


@pytest.mark.parametrize("text", ["amd64", "linux/", "a/b/c/d"])
def test_platform_parse_refuses(text):
    with pytest.raises(errors.InvalidArgument, match="os/arch"):
        Platform.parse(text)


@pytest.mark.parametrize(
    ("raw", "media_type"),
    [
        (b'{"schemaVersion": 2, "manifests": []}', OCI_INDEX),
        (b'{"schemaVersion": 2, "layers": []}', OCI_MANIFEST),
    ],
)
def test_manifest_without_media_type_is_told_by_shape(raw, media_type):
    manifest = Manifest.from_bytes(raw)
    assert manifest.media_type == media_type
    assert manifest.digest == content_digest(raw, "sha256")


def test_content_digest_refuses_unknown_algorithms():
    with pytest.raises(errors.UnsupportedManifest, match="md5"):
        content_digest(b"", "md5")
