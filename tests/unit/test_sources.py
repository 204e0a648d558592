"""Which layers of a manifest hold the disk, and as what (no registry: the manifest alone)."""

from __future__ import annotations

import json

import pytest

from vmdiskimage import sources
from vmdiskimage.errors import UnsupportedManifest
from vmdiskimage.oci import Manifest, ResolvedImage
from vmdiskimage.reference import ImageReference

pytestmark = pytest.mark.unit

TAR = "application/vnd.oci.image.layer.v1.tar"
TAR_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_TAR_GZ = "application/vnd.docker.image.rootfs.diff.tar.gzip"
KUBEVIRT_RAW_ZSTD = "application/vnd.kubevirt.disk.raw+zstd"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
#: What `oras push` writes: the empty config (image-spec v1.1, its default) or the
#: "unknown" config of `--image-spec v1.0`.
ORAS_EMPTY = "application/vnd.oci.empty.v1+json"
ORAS_UNKNOWN = "application/vnd.unknown.config.v1+json"
TITLE = "org.opencontainers.image.title"


def _layer(media_type: str, n: int, **annotations: str) -> dict:
    layer = {"mediaType": media_type, "digest": f"sha256:{n:064x}", "size": 100 + n}
    if annotations:
        layer["annotations"] = annotations
    return layer


def _image(config_type: str, layers: list[dict], **extra: object) -> ResolvedImage:
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": _layer(config_type, 0),
        "layers": layers,
        **extra,
    }
    manifest = Manifest.from_bytes(json.dumps(doc).encode())
    return ResolvedImage(
        ImageReference.parse("registry.example/disks/d@" + manifest.digest), manifest
    )


ORAS_DISK = _layer(TAR, 1, **{TITLE: "disk.img"})
ORAS_ARTIFACT_TYPE = {"artifactType": "application/vnd.unknown.artifact.v1"}


@pytest.mark.parametrize(
    ("image", "kind", "picked"),
    [
        pytest.param(_image(ORAS_EMPTY, [ORAS_DISK], **ORAS_ARTIFACT_TYPE), sources.FILE, [1],
                     id="oras-push"),
        pytest.param(_image(ORAS_UNKNOWN, [ORAS_DISK]), sources.FILE, [1],
                     id="oras-image-spec-1.0"),
        pytest.param(_image(ORAS_EMPTY, [_layer(TAR_GZ, 1)]), sources.FILE, [1],
                     id="empty-config-gzip-tar"),
        pytest.param(_image(ORAS_EMPTY, [_layer(TAR, 1), _layer("text/markdown", 2)]),
                     sources.FILE, [1], id="oras-file-beside-a-typed-one"),
        pytest.param(_image(OCI_CONFIG, [_layer(TAR, 1, **{TITLE: "disk.img"})]),
                     sources.CONTAINER_DISK, [1], id="oci-image-titled-tar"),
        pytest.param(_image(OCI_CONFIG, [_layer(TAR_GZ, 1), _layer(TAR_GZ, 2)]),
                     sources.CONTAINER_DISK, [1, 2], id="oci-image"),
        pytest.param(_image(DOCKER_CONFIG, [_layer(DOCKER_TAR_GZ, 1)]),
                     sources.CONTAINER_DISK, [1], id="docker-image"),
        pytest.param(_image(ORAS_EMPTY, [_layer(KUBEVIRT_RAW_ZSTD, 1), _layer(TAR, 2)]),
                     sources.ARTIFACT, [1], id="typed-disk-layer-wins"),
    ],
)  # fmt: skip
def test_classify(image, kind, picked):
    got_kind, layers = sources.classify(image)
    assert got_kind == kind
    assert [int(d.digest.split(":")[1], 16) for d in layers] == picked


def test_classify_refuses_an_image_without_tar_or_disk_layers():
    image = _image(ORAS_EMPTY, [_layer("text/markdown", 1)])
    with pytest.raises(UnsupportedManifest, match="neither a containerDisk"):
        sources.classify(image)
