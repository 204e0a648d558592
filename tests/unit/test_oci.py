"""The OCI model: platform names, manifests, digests."""

from __future__ import annotations

import pytest

from vmdiskimage import errors
from vmdiskimage.oci import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    Platform,
    content_digest,
)

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


INDEX_BODY = b'{"schemaVersion": 2, "manifests": []}'
IMAGE_BODY = b'{"schemaVersion": 2, "config": {}, "layers": []}'


@pytest.mark.parametrize(
    ("raw", "content_type", "media_type"),
    [
        # No mediaType, and a Content-Type that names no manifest type: told by fields.
        (INDEX_BODY, "application/json", OCI_INDEX),
        (IMAGE_BODY, "application/json", OCI_MANIFEST),
        (IMAGE_BODY, "application/json; charset=utf-8", OCI_MANIFEST),
        (INDEX_BODY, "text/plain", OCI_INDEX),
        (IMAGE_BODY, "application/octet-stream", OCI_MANIFEST),
        (IMAGE_BODY, "", OCI_MANIFEST),
        # A Content-Type that names the type is taken.
        (INDEX_BODY, f"{DOCKER_MANIFEST_LIST}", DOCKER_MANIFEST_LIST),
        (IMAGE_BODY, DOCKER_MANIFEST, DOCKER_MANIFEST),
        # The document's own mediaType wins over any Content-Type.
        (b'{"schemaVersion":2,"mediaType":"%s","layers":[]}' % DOCKER_MANIFEST.encode(),
         "application/json", DOCKER_MANIFEST),
    ],
)  # fmt: skip
def test_manifest_type_without_media_type(raw, content_type, media_type):
    assert Manifest.from_bytes(raw, content_type).media_type == media_type


@pytest.mark.parametrize(
    ("raw", "content_type", "refused"),
    [
        (b'{"schemaVersion": 1, "fsLayers": []}', "application/json", "schema 1"),
        (b'{"fsLayers": [], "history": []}', None, "schema 1"),
        (b'{"schemaVersion": 2, "manifests": [], "layers": []}', "application/json",
         "both manifests and layers or config"),
        (b'{"schemaVersion": 2}', "application/json", "neither manifests nor layers"),
        (IMAGE_BODY, "application/vnd.oci.artifact.manifest.v1+json", "unsupported media type"),
    ],
)  # fmt: skip
def test_manifest_type_that_cannot_be_told_is_refused(raw, content_type, refused):
    with pytest.raises(errors.UnsupportedManifest, match=refused):
        Manifest.from_bytes(raw, content_type)
