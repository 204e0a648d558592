"""Disks as other tools publish them, imported from a real registry: ISO containerDisks
(driver CDs such as virtio-win)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.images import (
    MiB,
    compress_file,
    make_iso,
    push_crafted,
    skopeo_copy,
    umoci_container_disk,
)
from vmdiskimage import sources
from vmdiskimage.populate import populate

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("iso")
    return make_iso(work / "virtio-win.iso", work)


@pytest.fixture(scope="module")
def iso_container_disk(plain_registry, iso, tmp_path_factory) -> str:
    """The layout of quay.io/kubevirt/virtio-container-disk: the ISO at disk/virtio-win.iso."""
    work = tmp_path_factory.mktemp("iso-cd")
    src = umoci_container_disk(work / "umoci", "iso", [(str(iso), "/disk/virtio-win.iso")])
    skopeo_copy(src, plain_registry, "kubevirt/virtio-container-disk:iso")
    return f"{plain_registry.url}/kubevirt/virtio-container-disk:iso"


def test_iso_container_disk_is_imported_as_raw_data(
    plain_registry, iso, iso_container_disk, tmp_path
):
    target = tmp_path / "disk.img"
    with plain_registry.client() as client:
        info = sources.inspect(client, iso_container_disk)
        result = populate(iso_container_disk, target, target_size="8Mi", client=client)
    assert (info.kind, info.format, info.disk_path) == (
        "containerDisk",
        "iso",
        "disk/virtio-win.iso",
    )
    assert info.virtual_size == iso.stat().st_size
    assert (result.source_format, result.decoder, result.scratch_bytes) == ("iso", "stream", 0)
    assert result.virtual_size == 8 * MiB == target.stat().st_size
    data, original = target.read_bytes(), iso.read_bytes()
    assert data[: len(original)] == original
    assert data[len(original) :] == bytes(8 * MiB - len(original))


def test_iso_into_a_qcow2_target_is_read_by_qemu_img_as_raw(
    plain_registry, iso, iso_container_disk, tmp_path
):
    target = tmp_path / "disk.qcow2"
    with plain_registry.client() as client:
        result = populate(iso_container_disk, target, target_format="qcow2", client=client)
    assert (result.source_format, result.decoder) == ("iso", "scratch")
    back = tmp_path / "back.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(target), str(back)], check=True)
    assert back.read_bytes() == iso.read_bytes()


def test_iso_in_an_artifact_labelled_raw_is_accepted(plain_registry, iso, tmp_path):
    """An ISO is raw data: a KubeVirt ``raw+zstd`` layer holding one is no mislabel."""
    blob = compress_file(iso, tmp_path / "iso.zst", "zstd").read_bytes()
    with plain_registry.client() as client:
        push_crafted(
            client, "virtio/artifact", "1", [(blob, "application/vnd.kubevirt.disk.raw+zstd", None)]
        )
        result = populate(
            f"{plain_registry.url}/virtio/artifact:1", tmp_path / "d.img", client=client
        )
    assert (result.kind, result.source_format) == ("artifact", "iso")
    assert (tmp_path / "d.img").read_bytes() == iso.read_bytes()
