"""The OCI model: platform names, manifests, digests."""

from __future__ import annotations

import pytest

from vmdiskimage import errors
from vmdiskimage.oci import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    Platform,
    content_digest,
    select_manifest,
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


def _spec(text: str | None) -> dict | None:
    if text is None:
        return None
    os_, arch, *variant = text.split("/")
    return {"os": os_, "architecture": arch, **({"variant": variant[0]} if variant else {})}


@pytest.mark.parametrize(
    ("wanted", "entry", "matches"),
    [
        ("linux/amd64", "linux/amd64", True),
        ("linux/amd64", "linux/amd64/v1", True),  # v1 is amd64's default
        ("linux/amd64/v1", "linux/amd64", True),
        ("linux/amd64", "linux/amd64/v2", False),  # needs a newer CPU than asked for
        ("linux/amd64/v3", "linux/amd64/v2", True),  # older variants run on newer CPUs
        ("linux/amd64/v3", "linux/amd64", True),
        ("linux/amd64", "linux/x86_64", True),  # aliases
        ("linux/x86-64", "linux/amd64", True),
        ("linux/amd64", "linux/386", False),  # no cross-architecture fallback
        ("linux/arm64", "linux/arm64/v8", True),  # v8 is arm64's default
        ("linux/arm64/v8", "linux/arm64", True),
        ("linux/arm64/8", "linux/aarch64/v8.0", True),
        ("linux/arm64", "linux/arm64/v9", False),
        ("linux/arm64", "linux/arm/v7", False),
        ("linux/arm", "linux/arm/v7", True),  # v7 is arm's default
        ("linux/arm/7", "linux/arm", True),
        ("linux/arm", "linux/arm/v6", True),
        ("linux/arm/v6", "linux/arm/v7", False),
        ("linux/arm", "linux/armhf", True),
        ("linux/arm/v6", "linux/armel", True),
        ("Linux/AMD64", "linux/amd64", True),  # case
        ("linux/amd64", "LINUX/Amd64", True),
        ("linux/amd64", "windows/amd64", False),
        ("linux/amd64", None, False),  # no platform: only a last resort, see below
    ],
)
def test_platform_matching_normalised_as_containerd_does(wanted, entry, matches):
    assert Platform.parse(wanted).matches(_spec(entry)) is matches


def _entries(*platforms: str | None) -> list[Descriptor]:
    return [
        Descriptor(OCI_MANIFEST, f"sha256:{i:064x}", 1, platform=_spec(p))
        for i, p in enumerate(platforms)
    ]


@pytest.mark.parametrize(
    ("wanted", "platforms", "chosen"),
    [
        ("linux/amd64/v3", ["linux/amd64", "linux/amd64/v3", "linux/amd64/v2"], 1),
        ("linux/amd64/v3", ["linux/amd64", "linux/amd64/v2"], 1),  # the closest below
        ("linux/arm/v7", ["linux/arm/v5", "linux/arm/v6"], 1),
        ("linux/arm64", [None, "linux/arm64/v8"], 1),  # a match beats no platform
        ("linux/s390x", ["linux/amd64", None, None], 1),  # no match: the first without one
        ("linux/s390x", ["linux/amd64", "linux/arm64"], None),
    ],
)
def test_index_entry_chosen(wanted, platforms, chosen):
    entries = _entries(*platforms)
    picked = select_manifest(entries, Platform.parse(wanted))
    assert picked is (None if chosen is None else entries[chosen])
