"""Which layers of a manifest hold the disk, and as what (no registry: the manifest alone)."""

from __future__ import annotations

import json
import re

import pytest

from vmdiskimage import sources
from vmdiskimage.errors import DiskNameRequired, DiskNotFound, UnsupportedManifest
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


# -- several disks: a KubeVirt VM export, one layer per volume ----------------------------

KUBEVIRT_NAME = "io.kubevirt.disk.name"
ROOTDISK = _layer(KUBEVIRT_RAW_ZSTD, 1, **{KUBEVIRT_NAME: "rootdisk", TITLE: "rootdisk.raw.zst"})
DATADISK = _layer(KUBEVIRT_RAW_ZSTD, 2, **{KUBEVIRT_NAME: "datadisk", TITLE: "datadisk.raw.zst"})
VM_EXPORT = _image(
    "application/vnd.kubevirt.virtualmachine.config.v1+json",
    [ROOTDISK, DATADISK],
    artifactType="application/vnd.kubevirt.virtualmachine.v1",
)
ORAS_TWO_FILES = _image(
    ORAS_EMPTY, [_layer(TAR, 1, **{TITLE: "disk.img"}), _layer(TAR, 2, **{TITLE: "seed.iso"})]
)


@pytest.mark.parametrize(
    ("image", "name", "kind", "picked"),
    [
        pytest.param(VM_EXPORT, "rootdisk", sources.ARTIFACT, 1, id="export-rootdisk"),
        pytest.param(VM_EXPORT, "datadisk", sources.ARTIFACT, 2, id="export-datadisk"),
        pytest.param(ORAS_TWO_FILES, "seed.iso", sources.FILE, 2, id="oras-file-by-title"),
        pytest.param(_image(ORAS_EMPTY, [ROOTDISK]), "rootdisk", sources.ARTIFACT, 1,
                     id="one-disk-named-as-it-is"),
        pytest.param(_image(ORAS_EMPTY, [ROOTDISK]), None, sources.ARTIFACT, 1,
                     id="one-disk-needs-no-name"),
    ],
)  # fmt: skip
def test_a_disk_is_picked_by_its_name(image, name, kind, picked):
    got_kind, (layer,) = sources.classify(image, name)
    assert (got_kind, layer.digest) == (kind, f"sha256:{picked:064x}")


def test_several_disks_and_no_name_say_which_names_there_are():
    with pytest.raises(DiskNameRequired) as exc:
        sources.classify(VM_EXPORT)
    assert "holds 2 disks, 'rootdisk' and 'datadisk': name the one" in exc.value.message
    assert "spec.diskName" in exc.value.message
    assert exc.value.details["disk_names"] == ["rootdisk", "datadisk"]
    with pytest.raises(DiskNameRequired, match=r"disks, 'disk\.img' and 'seed\.iso'"):
        sources.classify(ORAS_TWO_FILES)


@pytest.mark.parametrize(
    ("image", "name", "complaint"),
    [
        pytest.param(VM_EXPORT, "swap", "no disk named 'swap'; its disks are 'rootdisk' and "
                     "'datadisk'", id="unknown-name"),
        pytest.param(VM_EXPORT, "rootdisk.raw.zst", "no disk named 'rootdisk.raw.zst'",
                     id="title-of-a-named-volume"),
        pytest.param(_image(ORAS_EMPTY, [_layer(KUBEVIRT_RAW_ZSTD, 3)]), "rootdisk",
                     "its disk is a layer without a name (io.kubevirt.disk.name or "
                     "org.opencontainers.image.title)", id="unnamed-layer"),
        pytest.param(_image(OCI_CONFIG, [_layer(TAR_GZ, 1)]), "rootdisk",
                     "is a containerDisk, whose one disk is the file under disk/",
                     id="containerDisk"),
    ],
)  # fmt: skip
def test_a_name_no_disk_goes_by_is_refused(image, name, complaint):
    with pytest.raises(DiskNotFound, match=re.escape(complaint)):
        sources.classify(image, name)


def test_disks_without_a_name_are_counted():
    image = _image(
        ORAS_EMPTY, [ROOTDISK, _layer(KUBEVIRT_RAW_ZSTD, 3), _layer(KUBEVIRT_RAW_ZSTD, 4)]
    )
    with pytest.raises(DiskNameRequired, match="3 disks, 'rootdisk' and 2 layers without a name"):
        sources.classify(image)


def test_two_disks_of_one_name_are_refused():
    image = _image(ORAS_EMPTY, [ROOTDISK, {**DATADISK, "annotations": ROOTDISK["annotations"]}])
    with pytest.raises(UnsupportedManifest, match="2 disk layers named 'rootdisk'"):
        sources.classify(image, "rootdisk")
