"""Disks as other tools publish them, imported from a real registry: ISO containerDisks
(driver CDs such as virtio-win), files pushed by the oras CLI with its defaults, and
KubeVirt VM exports with one layer per volume."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.images import (
    MiB,
    compress_file,
    kubevirt_vm_export,
    make_iso,
    oras_push,
    push_crafted,
    skopeo_copy,
    umoci_container_disk,
)
from tests.support.measure import run_populate
from vmdiskimage import errors, sources
from vmdiskimage.populate import populate
from vmdiskimage.reference import ImageReference

pytestmark = pytest.mark.registry

ORAS_LAYER = "application/vnd.oci.image.layer.v1.tar"
ORAS_CONFIGS = ("application/vnd.oci.empty.v1+json", "application/vnd.unknown.config.v1+json")
TITLE = "org.opencontainers.image.title"


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


# -- oras push -----------------------------------------------------------------------


def _tar_of_disk(disk: Path, dest: Path) -> Path:
    """A containerDisk layer as GNU tar writes it: disk/disk.img, uid 107."""
    root = dest.parent / "root"
    (root / "disk").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(disk, root / "disk" / "disk.img")
    subprocess.run(
        ["tar", "-C", str(root), "--owner=107", "--group=107", "-cf", str(dest), "disk"],
        check=True,
    )
    return dest


#: name -> (file pushed, extra `oras push` arguments, kind, format, compression, disk path)
ORAS_CASES = {
    "raw": ("disk.img", (), "artifact", "raw", "none", "disk.img"),
    "qcow2": ("fedora.qcow2", (), "artifact", "qcow2", "none", "fedora.qcow2"),
    "image-spec-1.0": ("disk.img", ("--image-spec", "v1.0"), "artifact", "raw", "none", "disk.img"),
    "gzip": ("disk.img.gz", (), "artifact", "raw", "gzip", "disk.img.gz"),
    "zstd-qcow2": ("fedora.qcow2.zst", (), "artifact", "qcow2", "zstd", "fedora.qcow2.zst"),
    "iso": ("virtio-win.iso", (), "artifact", "iso", "none", "virtio-win.iso"),
    "containerdisk-tar": ("containerdisk.tar", (), "containerDisk", "raw", "none", "disk/disk.img"),
}  # fmt: skip


@pytest.fixture(scope="module")
def oras_images(oras, plain_registry, disks, iso, tmp_path_factory) -> dict[str, str]:
    """Each of :data:`ORAS_CASES` pushed by `oras push`, as a user would."""
    work = tmp_path_factory.mktemp("oras")
    files = {
        "disk.img": shutil.copyfile(disks["raw"], work / "disk.img"),
        "fedora.qcow2": shutil.copyfile(disks["qcow2"], work / "fedora.qcow2"),
        "disk.img.gz": compress_file(disks["raw"], work / "disk.img.gz", "gzip"),
        "fedora.qcow2.zst": compress_file(disks["qcow2"], work / "fedora.qcow2.zst", "zstd"),
        "virtio-win.iso": shutil.copyfile(iso, work / "virtio-win.iso"),
        "containerdisk.tar": _tar_of_disk(disks["raw"], work / "cd" / "containerdisk.tar"),
    }
    return {
        name: oras_push(oras, plain_registry, f"oras/disk:{name}", files[file], *extra)
        for name, (file, extra, *_) in ORAS_CASES.items()
    }


@pytest.mark.parametrize("case", ORAS_CASES)
def test_oras_push_with_its_defaults(oras_images, plain_registry, disks, iso, tmp_path, case):
    file, _extra, kind, fmt, comp, path = ORAS_CASES[case]
    target = tmp_path / "disk.img"
    with plain_registry.client() as client:
        manifest = client.resolve(ImageReference.parse(oras_images[case])).manifest
        info = sources.inspect(client, oras_images[case])
        result = populate(oras_images[case], target, client=client)
    # What oras wrote: no image config, one plain tar layer named after the file.
    assert manifest.config.media_type in ORAS_CONFIGS
    (layer,) = manifest.layers
    assert (layer.media_type, layer.annotations[TITLE]) == (ORAS_LAYER, file)
    assert (info.kind, info.format, info.compression, info.disk_path) == (kind, fmt, comp, path)
    expected = iso if fmt == "iso" else disks["raw"]
    assert (result.kind, result.source_format) == (kind, fmt)
    assert target.read_bytes() == expected.read_bytes()


# -- KubeVirt VM exports -------------------------------------------------------------


@pytest.fixture(scope="module")
def vm_export(plain_registry, disks, tmp_path_factory) -> str:
    """A VM exported by KubeVirt with two volumes: rootdisk (4 MiB) and datadisk (3 MiB)."""
    layout = tmp_path_factory.mktemp("vm-export") / "layout"
    volumes = {"rootdisk": disks["raw"], "datadisk": disks["other"]}
    skopeo_copy(kubevirt_vm_export(layout, volumes), plain_registry, "export/vm:1", "--all")
    return f"{plain_registry.url}/export/vm:1"


@pytest.mark.parametrize(("volume", "disk"), [("rootdisk", "raw"), ("datadisk", "other")])
def test_vm_export_disk_is_picked_by_name_and_sized_from_its_annotation(
    plain_registry, disks, vm_export, tmp_path, volume, disk
):
    target = tmp_path / "disk.img"
    with plain_registry.client() as client:
        info = sources.inspect(client, vm_export, name=volume)
        result = populate(vm_export, target, disk_name=volume, client=client)
    size = disks[disk].stat().st_size
    assert (info.kind, info.format, info.compression, info.disk_name) == (
        "artifact",
        "raw",
        "zstd",
        volume,
    )
    # Sized from the manifest alone: the zstd frames do not say.
    assert info.virtual_size == info.disk_size == size
    assert info.sizes_from["virtual_size"] == "layer annotation io.kubevirt.disk.size"
    assert result.disk_name == volume
    assert target.read_bytes() == disks[disk].read_bytes()


def test_vm_export_without_a_disk_name_names_its_disks(vm_export, tmp_path):
    run = run_populate(
        [f"--source={vm_export}", f"--target={tmp_path / 'disk.img'}", "--plain-http"],
        tmp_path / "run",
    )
    assert run.returncode == 1, run.stderr
    assert run.message["reason"] == "DiskNameRequired"
    assert "holds 2 disks, 'rootdisk' and 'datadisk'" in run.message["message"]
    assert run.message["disk_names"] == ["rootdisk", "datadisk"]
    assert not (tmp_path / "disk.img").exists()


def test_vm_export_disk_named_on_the_command_line(disks, vm_export, tmp_path):
    target = tmp_path / "disk.img"
    run = run_populate(
        [f"--source={vm_export}", f"--target={target}", "--plain-http", "--disk-name=datadisk"],
        tmp_path / "run",
    )
    assert run.returncode == 0, run.stderr
    assert (run.message["result"], run.message["diskName"]) == ("Succeeded", "datadisk")
    assert target.read_bytes() == disks["other"].read_bytes()


def test_vm_export_disk_name_that_is_not_there_lists_the_names(plain_registry, vm_export):
    with plain_registry.client() as client, pytest.raises(errors.DiskNotFound) as exc:
        sources.inspect(client, vm_export, name="swap")
    assert "no disk named 'swap'; its disks are 'rootdisk' and 'datadisk'" in exc.value.message


def test_vmdiskimage_inspect_names_the_disk(disks, vm_export):
    command = [
        str(Path(sys.executable).parent / "vmdiskimage"),
        "inspect",
        vm_export,
        "--plain-http",
    ]
    named = subprocess.run([*command, "--disk-name", "datadisk"], capture_output=True, text=True)
    assert named.returncode == 0, named.stderr
    info = json.loads(named.stdout)
    assert (info["disk_name"], info["virtual_size"]) == ("datadisk", disks["other"].stat().st_size)
    unnamed = subprocess.run(command, capture_output=True, text=True)
    assert unnamed.returncode == 1
    assert "DiskNameRequired" in unnamed.stderr and "'rootdisk' and 'datadisk'" in unnamed.stderr
