"""End to end: images pushed by skopeo/umoci/hand-made layouts and by `vmdiskimage push`,
imported by populate() into files, directories and (when available) a loop device."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import pytest
import zstandard

from tests.support.images import (
    Layout,
    MiB,
    allocated_bytes,
    compress_file,
    data_bytes,
    make_disk,
    push_crafted,
    skopeo_copy,
    umoci_container_disk,
)
from vmdiskimage import errors, push, sources
from vmdiskimage.populate import populate

pytestmark = pytest.mark.registry

KUBEVIRT_MT = "application/vnd.kubevirt.disk.{fmt}{suffix}"


def _gnu_tar_layer(disk: Path, workdir: Path) -> Path:
    root = workdir / "root"
    (root / "disk").mkdir(parents=True, exist_ok=True)
    (root / "disk" / "disk.img").write_bytes(disk.read_bytes())
    layer = workdir / "layer.tar"
    subprocess.run(
        ["tar", "-C", str(root), "--owner=107", "--group=107", "-cf", str(layer), "disk"],
        check=True,
    )
    return layer


@pytest.fixture(scope="module")
def images(
    plain_registry, tls_registry, disks, tmp_path_factory
) -> dict[tuple[str, str, str, str], str]:
    """(tool, kind, compression, format) -> reference, pushed once for the module."""
    work = tmp_path_factory.mktemp("images")
    reg = plain_registry
    refs: dict[tuple[str, str, str, str], str] = {}
    with reg.client() as client:
        for fmt in ("raw", "qcow2"):
            disk = disks[fmt]
            # containerDisk built by umoci (gzip layer) and copied by skopeo.
            src = umoci_container_disk(work / "umoci", fmt, [(str(disk), "/disk/disk.img")])
            skopeo_copy(src, reg, f"skopeo/cd:{fmt}-gzip")
            refs["skopeo", "containerDisk", "gzip", fmt] = f"{reg.url}/skopeo/cd:{fmt}-gzip"
            # Recompressed to zstd by skopeo. Into another registry: skopeo's blob info
            # cache would otherwise reuse the gzip blob it just pushed under a zstd label.
            skopeo_copy(
                src, tls_registry, f"skopeo/cd:{fmt}-zstd", "--dest-compress-format", "zstd"
            )
            refs["skopeo", "containerDisk", "zstd", fmt] = (
                f"{tls_registry.url}/skopeo/cd:{fmt}-zstd"
            )
            # Docker schema 2 manifest.
            skopeo_copy(src, reg, f"skopeo/cd:{fmt}-v2s2", "--format", "v2s2")
            refs["skopeo-v2s2", "containerDisk", "gzip", fmt] = f"{reg.url}/skopeo/cd:{fmt}-v2s2"
            # Uncompressed tar layer written by GNU tar, in a hand-made layout.
            layout = Layout(work / f"layout-cd-{fmt}")
            layer = layout.blob_file(
                _gnu_tar_layer(disk, work / f"tar-{fmt}"), "application/vnd.oci.image.layer.v1.tar"
            )
            layout.tag(layout.manifest([layer]), "t")
            skopeo_copy(f"oci:{layout.path}:t", reg, f"skopeo/cd:{fmt}-none")
            refs["skopeo", "containerDisk", "none", fmt] = f"{reg.url}/skopeo/cd:{fmt}-none"
            # Artifacts with KubeVirt media types, compressed by the command-line tools.
            for comp in ("none", "gzip", "zstd", "xz"):
                layout = Layout(work / f"layout-{fmt}-{comp}")
                blob = compress_file(disk, work / f"{fmt}.{comp}", comp)
                suffix = "" if comp == "none" else f"+{comp}"
                layer = layout.blob_file(blob, KUBEVIRT_MT.format(fmt=fmt, suffix=suffix))
                layout.tag(
                    layout.manifest([layer], artifactType="application/vnd.kubevirt.disk"), "t"
                )
                skopeo_copy(f"oci:{layout.path}:t", reg, f"skopeo/art:{fmt}-{comp}")
                refs["skopeo", "artifact", comp, fmt] = f"{reg.url}/skopeo/art:{fmt}-{comp}"
            # The same through our own writer.
            for kind, comps in (
                (sources.ARTIFACT, ("none", "gzip", "zstd", "xz")),
                (sources.CONTAINER_DISK, ("none", "gzip", "zstd")),
            ):
                for comp in comps:
                    ref = f"{reg.url}/ours/{kind.lower()}:{fmt}-{comp}"
                    push.push(disk, ref, kind=kind, comp=comp, client=client)
                    refs["push", kind, comp, fmt] = ref
    return refs


MATRIX = [
    (tool, kind, comp, fmt)
    for fmt in ("raw", "qcow2")
    for tool, kind, comps in (
        ("skopeo", "containerDisk", ("none", "gzip", "zstd")),
        ("skopeo-v2s2", "containerDisk", ("gzip",)),
        ("skopeo", "artifact", ("none", "gzip", "zstd", "xz")),
        ("push", "artifact", ("none", "gzip", "zstd", "xz")),
        ("push", "containerDisk", ("none", "gzip", "zstd")),
    )
    for comp in comps
]


@pytest.mark.parametrize(("tool", "kind", "comp", "fmt"), MATRIX, ids=["-".join(m) for m in MATRIX])
def test_every_source_kind_compression_and_format(
    images, plain_registry, tls_registry, disks, tmp_path, tool, kind, comp, fmt
):
    target = tmp_path / "disk.img"
    ref = images[tool, kind, comp, fmt]
    registry = tls_registry if ref.startswith(tls_registry.url) else plain_registry
    with registry.client() as client:
        info = sources.inspect(client, images[tool, kind, comp, fmt])
        result = populate(images[tool, kind, comp, fmt], target, client=client)
    assert (info.kind, info.compression, info.format) == (kind, comp, fmt)
    if tool == "skopeo" and kind == "artifact" and fmt == "raw" and comp in ("gzip", "xz"):
        assert info.virtual_size is None  # no annotation; only the full stream tells
    else:
        assert info.virtual_size == disks["raw"].stat().st_size
    assert (result.kind, result.source_format, result.target_format) == (kind, fmt, "raw")
    assert target.read_bytes() == disks["raw"].read_bytes()
    assert result.virtual_size == target.stat().st_size
    # Sparse: only the data extents are allocated.
    assert allocated_bytes(target) <= data_bytes(disks["raw"]) + 64 * 1024


def test_resize_grows_raw_disk_with_a_hole(images, plain_registry, disks, tmp_path):
    target = tmp_path / "disk.img"
    ref = images["push", "artifact", "zstd", "raw"]
    with plain_registry.client() as client:
        result = populate(ref, target, target_size="64Mi", client=client)
    assert result.virtual_size == 64 * MiB == target.stat().st_size
    raw = disks["raw"].read_bytes()
    with open(target, "rb") as fh:
        assert fh.read(len(raw)) == raw
        assert fh.read() == bytes(64 * MiB - len(raw))
    assert allocated_bytes(target) <= data_bytes(disks["raw"]) + 64 * 1024


def test_resize_qcow2_source_and_qcow2_target(images, plain_registry, disks, tmp_path):
    target = tmp_path / "disk.qcow2"
    ref = images["skopeo", "containerDisk", "gzip", "qcow2"]
    with plain_registry.client() as client:
        result = populate(ref, target, target_size="32Mi", target_format="qcow2", client=client)
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(target)], capture_output=True, check=True
        ).stdout
    )
    assert (info["format"], info["virtual-size"]) == ("qcow2", 32 * MiB)
    assert result.virtual_size == 32 * MiB
    raw_out = tmp_path / "check.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(target), str(raw_out)], check=True)
    assert raw_out.read_bytes()[: disks["raw"].stat().st_size] == disks["raw"].read_bytes()


@pytest.mark.parametrize("ref_key", [("push", "artifact", "zstd", "raw"),
                                     ("skopeo", "containerDisk", "gzip", "qcow2")])  # fmt: skip
def test_target_smaller_than_virtual_size_is_refused(images, plain_registry, tmp_path, ref_key):
    with plain_registry.client() as client, pytest.raises(errors.TargetTooSmall) as exc:
        populate(images[ref_key], tmp_path / "disk.img", target_size="2Mi", client=client)
    assert "2Mi" in exc.value.message and "4Mi" in exc.value.message


def test_directory_target_gets_disk_img_and_stale_data_is_gone(
    images, plain_registry, disks, tmp_path
):
    stale = tmp_path / "disk.img"
    stale.write_bytes(b"\xff" * (8 * MiB))  # a failed earlier attempt left garbage
    with plain_registry.client() as client:
        result = populate(images["push", "containerDisk", "gzip", "raw"], tmp_path, client=client)
    assert result.target == str(stale)
    assert stale.read_bytes() == disks["raw"].read_bytes()


def test_large_sparse_disk_stays_sparse(plain_registry, tmp_path):
    disk = make_disk(
        tmp_path / "big.raw", 256 * MiB, ((0, MiB), (100 * MiB + 4096, 3 * MiB)), seed=7
    )
    ref = f"{plain_registry.url}/ours/sparse:t"
    target = tmp_path / "out.img"
    with plain_registry.client() as client:
        push.push(disk, ref, kind=sources.CONTAINER_DISK, comp="gzip", client=client)
        populate(ref, target, client=client)
    assert target.stat().st_size == 256 * MiB
    assert allocated_bytes(target) <= 1.05 * data_bytes(disk) + 128 * 1024
    assert subprocess.run(["cmp", str(disk), str(target)]).returncode == 0


@pytest.mark.parametrize("writer", ["pzstd", "metadata-frame"])
def test_zstd_behind_skippable_frames(plain_registry, disks, tmp_path, writer):
    """zstd streams that start with skippable frames: pzstd writes one before each frame
    (its size), other tools a metadata frame. Before the fix the bytes were not taken for
    zstd: the compressed stream was imported as the raw disk."""
    disk = disks["raw"]
    if writer == "pzstd":
        blob = subprocess.run(
            ["pzstd", "-q", "-p", "2", "-c", str(disk)], check=True, capture_output=True
        ).stdout
    else:
        meta = b"v1"  # short: the frame header after it is within the sniffed head
        frame = zstandard.ZstdCompressor().compress(disk.read_bytes())
        blob = struct.pack("<II", 0x184D2A5E, len(meta)) + meta + frame
    assert 0x184D2A50 <= struct.unpack_from("<I", blob)[0] <= 0x184D2A5F
    ref = f"{plain_registry.url}/skippable/disk:{writer}"
    with plain_registry.client() as client:
        media_type = "application/vnd.kubevirt.disk.raw+zstd"
        push_crafted(client, "skippable/disk", writer, [(blob, media_type, None)])
        info = sources.inspect(client, ref)
        result = populate(ref, tmp_path / "disk.img", client=client)

    assert info.compression == "zstd" and info.format == "raw"
    if writer == "metadata-frame":  # its frame declares the content size: sized up front
        assert info.virtual_size == disk.stat().st_size
    assert (tmp_path / "disk.img").read_bytes() == disk.read_bytes()
    assert result.virtual_size == disk.stat().st_size
