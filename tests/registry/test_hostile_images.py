"""Images crafted by an attacker who controls the image: files of the pod read into the
disk through qemu-img, and the sandbox that stops what a check might miss."""

from __future__ import annotations

import json
import subprocess
import tarfile
import time

import pytest
import zstandard

from tests.support.hostile import (
    END_OF_ARCHIVE,
    SECRET,
    qcow2_with_data_file,
    secret_file,
    tar_entry,
    vmdk_descriptor,
    vmdk_sparse_capacity_zero,
    zstd_repeated,
)
from tests.support.images import MiB, push_crafted, tar_layer
from vmdiskimage import errors
from vmdiskimage.populate import main, populate

pytestmark = pytest.mark.registry

TAR = "application/vnd.oci.image.layer.v1.tar"


def _container_disk(registry, repo_tag: str, disk: bytes) -> str:
    info = tarfile.TarInfo("disk/disk.img")
    info.size = len(disk)
    repo, tag = repo_tag.split(":")
    with registry.client() as client:
        push_crafted(client, repo, tag, [(tar_layer([(info, disk)]), TAR, None)])
    return f"{registry.url}/{repo_tag}"


def _import(registry, ref, target, **kw):
    with registry.client() as client:
        return populate(ref, target, client=client, scratch_dir=target.parent, **kw)


def _assert_no_leak(target) -> None:
    if target.exists():
        assert SECRET[:64] not in target.read_bytes()


def _hostile_disks(tmp_path):
    secret = secret_file(tmp_path)
    flat = vmdk_descriptor("monolithicFlat", [("FLAT", 8, str(secret))])
    return {
        "qcow2-data-file": qcow2_with_data_file(tmp_path, secret),
        "vmdk-monolithicFlat": flat,
        "vmdk-twoGbMaxExtentFlat": vmdk_descriptor(
            "twoGbMaxExtentFlat", [("FLAT", 8, str(secret))]
        ),
        "vmdk-twoGbMaxExtentSparse": vmdk_descriptor(
            "twoGbMaxExtentSparse", [("SPARSE", 8, str(secret))]
        ),
        "vmdk-vmfs": vmdk_descriptor("vmfs", [("VMFS", 8, str(secret))]),
        "vmdk-sparse-capacity-0": vmdk_sparse_capacity_zero(flat),
    }


KINDS = [
    "qcow2-data-file",
    "vmdk-monolithicFlat",
    "vmdk-twoGbMaxExtentFlat",
    "vmdk-twoGbMaxExtentSparse",
    "vmdk-vmfs",
    "vmdk-sparse-capacity-0",
]


@pytest.mark.parametrize("kind", KINDS)
def test_image_naming_a_file_of_the_pod_is_refused(plain_registry, tmp_path, kind):
    """Before the fix each of these imported the secret's bytes into the disk."""
    disk = _hostile_disks(tmp_path)[kind]
    ref = _container_disk(plain_registry, f"leak/{kind.lower()}:1", disk)
    target = tmp_path / "out.img"
    with pytest.raises(errors.VMDiskImageError) as exc:
        _import(plain_registry, ref, target)
    _assert_no_leak(target)
    assert exc.value.reason == "ExternalFileRefused", exc.value.message


@pytest.mark.parametrize("kind", ["qcow2-data-file", "vmdk-monolithicFlat"])
def test_sandbox_stops_what_the_checks_miss(plain_registry, tmp_path, monkeypatch, kind):
    """With every image check switched off, qemu-img still cannot read the secret.

    A qcow2 source written as raw never reaches qemu-img (the streaming decoder opens no
    file and refuses the data file itself), so the qcow2 case converts to a qcow2 target.
    """
    from vmdiskimage import formats, sandbox

    if not sandbox.abi_version():
        pytest.skip("this kernel has no Landlock")
    monkeypatch.setattr(formats, "_qcow2_data_file", lambda head, version: None)
    monkeypatch.setattr(formats, "_vmdk_descriptor_refs", lambda text, embedded: None)
    monkeypatch.setattr(formats, "_refuse_references", lambda info, path, fmt: None)
    ref = _container_disk(
        plain_registry, f"sandbox/{kind.lower()}:1", _hostile_disks(tmp_path)[kind]
    )
    target = tmp_path / "out.img"
    target_format = "raw"
    if kind == "qcow2-data-file":
        with pytest.raises(errors.ExternalFileRefused, match="incompatible feature bit 2"):
            _import(plain_registry, ref, target)
        target_format = "qcow2"
    with pytest.raises(errors.ConversionFailed, match="Permission denied"):
        _import(plain_registry, ref, target, target_format=target_format)
    _assert_no_leak(target)


@pytest.mark.parametrize("subformat", ["monolithicSparse", "streamOptimized"])
def test_self_contained_vmdk_imports(plain_registry, disks, tmp_path, subformat):
    vmdk = tmp_path / "disk.vmdk"
    subprocess.run(
        [
            "qemu-img",
            "convert",
            "-q",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            f"subformat={subformat}",
            str(disks["raw"]),
            str(vmdk),
        ],
        check=True,
    )
    ref = _container_disk(plain_registry, f"vmdk/{subformat.lower()}:1", vmdk.read_bytes())
    target = tmp_path / "out.img"
    result = _import(plain_registry, ref, target)
    assert result.source_format == "vmdk"
    assert target.read_bytes() == disks["raw"].read_bytes()


@pytest.mark.parametrize("fmt", ["vmdk", "qcow2"])
def test_non_raw_target_formats_at_the_requested_size(plain_registry, disks, tmp_path, fmt):
    """`--format vmdk` failed: qemu-img cannot resize a vmdk."""
    ref = _container_disk(plain_registry, "fmt/qcow2:1", disks["qcow2"].read_bytes())
    target = tmp_path / f"out.{fmt}"
    result = _import(plain_registry, ref, target, target_size="16Mi", target_format=fmt)
    assert result.virtual_size == 16 * MiB
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", str(target)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f'"virtual-size": {16 * MiB}' in info and f'"format": "{fmt}"' in info
    back = tmp_path / "back.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(target), str(back)], check=True)
    raw = disks["raw"].read_bytes()
    assert back.read_bytes() == raw + bytes(16 * MiB - len(raw))


# -- what surrounds the disk: duplicates, and tar walks that cost minutes ------------


def _push_layers(registry, repo_tag: str, layers: list[tuple[bytes, str]]) -> str:
    repo, tag = repo_tag.split(":")
    with registry.client() as client:
        push_crafted(client, repo, tag, [(data, media_type, None) for data, media_type in layers])
    return f"{registry.url}/{repo_tag}"


@pytest.mark.parametrize(
    ("second", "match"), [("disk/disk.img", "twice"), ("disk/b.img", "two disks")]
)
def test_second_disk_in_the_layer_is_refused(plain_registry, disks, tmp_path, second, match):
    """Before the fix the first entry was imported; `tar -x` would have kept the second."""
    raw = disks["raw"].read_bytes()
    layer = (
        tar_entry("disk/disk.img", raw)
        + tar_entry(second, disks["other"].read_bytes())
        + END_OF_ARCHIVE
    )
    ref = _push_layers(plain_registry, f"dup/{second.replace('/', '-')}:1", [(layer, TAR)])
    with pytest.raises(errors.VMDiskImageError, match=match) as exc:
        _import(plain_registry, ref, tmp_path / "out.img")
    assert exc.value.reason == "UnsafeDiskEntry"


def test_tar_of_empty_headers_is_cut_short(plain_registry, disks, tmp_path):
    """An upper layer of 2 M empty tar headers (1 GiB, 100 KiB of zstd) over the disk.

    Before the fix every header was parsed: about 20 CPU-seconds here, and 200 for the
    24 M headers one MiB of zstd can hold.
    """
    raw = disks["raw"].read_bytes()
    disk_layer = tar_entry("disk/disk.img", raw) + END_OF_ARCHIVE
    bomb = zstd_repeated(tar_entry("etc/empty"), 2_000_000)
    assert len(bomb) < MiB
    ref = _push_layers(plain_registry, "cpu/headers:1", [(disk_layer, TAR), (bomb, TAR + "+zstd")])
    started = time.process_time()
    with pytest.raises(errors.VMDiskImageError) as exc:
        _import(plain_registry, ref, tmp_path / "out.img")
    assert exc.value.reason == "ImageLimitExceeded", exc.value.message
    assert time.process_time() - started < 5


def test_bytes_after_the_end_of_archive_are_not_decompressed(plain_registry, disks, tmp_path):
    """64 GiB of zeros (2 MiB of zstd) after the end-of-archive blocks, in the upper layer
    and in the disk's layer: hashed as compressed bytes, never decompressed."""
    raw = disks["raw"].read_bytes()
    frame = zstd_repeated(bytes(MiB), 1024, level=19)  # 1 GiB of zeros, 32 KiB
    tail = frame * 32
    disk_layer = (
        zstandard.ZstdCompressor().compress(tar_entry("disk/disk.img", raw) + END_OF_ARCHIVE) + tail
    )
    upper = zstandard.ZstdCompressor().compress(tar_entry("etc/motd", b"hi\n") + END_OF_ARCHIVE)
    ref = _push_layers(
        plain_registry,
        "cpu/tail:1",
        [(disk_layer, TAR + "+zstd"), (upper + tail, TAR + "+zstd")],
    )
    started = time.process_time()
    _import(plain_registry, ref, tmp_path / "out.img")
    assert time.process_time() - started < 2
    assert (tmp_path / "out.img").read_bytes() == raw


# -- what the image's strings do to the pod's outputs --------------------------------


def test_long_tar_name_keeps_the_termination_message_valid(plain_registry, tmp_path):
    """A 5,000-character disk name: before the fix the JSON was cut mid-string."""
    name = "disk/" + "n" * 4995
    layer = tar_entry(name, kind=tarfile.SYMTYPE, linkpath="/etc/shadow") + END_OF_ARCHIVE
    ref = _push_layers(plain_registry, "term/long:1", [(layer, TAR)])
    log = tmp_path / "termination-log"
    code = main(
        [
            f"--source={ref}",
            f"--target={tmp_path / 'out.img'}",
            "--plain-http",
            f"--termination-log={log}",
        ]
    )
    assert code == 1
    text = log.read_text()
    assert len(text.encode()) <= 4096
    message = json.loads(text)
    assert message["result"] == "Failed" and message["reason"] == "UnsafeDiskEntry"
    assert message["message"].startswith("disk/nnn")


def test_non_numeric_pax_size_is_a_corrupt_image(plain_registry, tmp_path):
    """Before the fix int() raised ValueError: InternalError, reported as a bug of ours."""
    layer = tar_entry("disk/disk.img", bytes(4096), size="4k") + END_OF_ARCHIVE
    ref = _push_layers(plain_registry, "pax/size:1", [(layer, TAR)])
    log = tmp_path / "termination-log"
    code = main(
        [
            f"--source={ref}",
            f"--target={tmp_path / 'out.img'}",
            "--plain-http",
            f"--termination-log={log}",
        ]
    )
    assert code == 1
    assert json.loads(log.read_text())["reason"] == "CorruptImage"
