"""Hostile or odd images: path traversal, links and devices as the disk, whiteouts,
disk bombs, backing files. Crafted with tarfile / GNU tar / umoci / qemu-img."""

from __future__ import annotations

import gzip
import io
import subprocess
import tarfile

import pytest
import zstandard

from tests.support.images import (
    MiB,
    make_disk,
    push_crafted,
    skopeo_copy,
    tar_layer,
    to_qcow2,
    umoci_container_disk,
)
from vmdiskimage import errors, oci, sources
from vmdiskimage.populate import populate

pytestmark = pytest.mark.registry

TAR = "application/vnd.oci.image.layer.v1.tar"
TAR_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"


def _entry(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = ""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.linkname = link
    return info


def _populate(registry, repo_tag, target, **kw):
    with registry.client() as client:
        return populate(f"{registry.url}/{repo_tag}", target, client=client, **kw)


def _crafted(registry, repo_tag, layers):
    repo, tag = repo_tag.split(":")
    with registry.client() as client:
        push_crafted(client, repo, tag, layers)


@pytest.mark.parametrize(
    ("entries", "match"),
    [
        ([(_entry("disk/../../etc/cron.d/x", size=4), b"evil")], "climbs out"),
        ([(_entry("../disk/disk.img", size=4), b"evil")], "climbs out"),
        ([(_entry("disk/disk.img", tarfile.SYMTYPE, link="/etc/shadow"), None)], "symbolic"),
        ([(_entry("disk/disk.img", tarfile.LNKTYPE, link="etc/passwd"), None)], "hard link"),
        ([(_entry("disk/disk.img", tarfile.CHRTYPE), None)], "character device"),
        ([(_entry("disk/disk.img", tarfile.BLKTYPE), None)], "block device"),
        ([(_entry("disk/disk.img", tarfile.FIFOTYPE), None)], "FIFO"),
    ],
    ids=["dotdot-inside", "dotdot-prefix", "symlink", "hardlink", "chardev", "blockdev", "fifo"],
)
def test_unsafe_tar_entries_are_refused(plain_registry, tmp_path, entries, match):
    _crafted(plain_registry, "evil/disk:1", [(tar_layer(entries), TAR, None)])
    with pytest.raises(errors.UnsafeDisk, match=match) as exc:
        _populate(plain_registry, "evil/disk:1", tmp_path / "out.img")
    assert exc.value.reason == "UnsafeDiskEntry"
    assert not (tmp_path / "out.img").exists() or (tmp_path / "out.img").stat().st_size == 0


def test_symlink_made_by_umoci_is_refused(plain_registry, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "disk.img").symlink_to("/etc/passwd")
    src = umoci_container_disk(tmp_path / "l", "t", [(str(tmp_path / "src"), "/disk")])
    skopeo_copy(src, plain_registry, "evil/link:1")
    with pytest.raises(errors.UnsafeDisk, match="symbolic link to '/etc/passwd'"):
        _populate(plain_registry, "evil/link:1", tmp_path / "out.img")


def test_gnu_sparse_tar_entry_is_refused(plain_registry, tmp_path):
    root = tmp_path / "root"
    (root / "disk").mkdir(parents=True)
    make_disk(root / "disk" / "disk.img", 4 * MiB, ((MiB, 4096),))
    layer = tmp_path / "l.tar"
    subprocess.run(["tar", "--sparse", "-C", str(root), "-cf", str(layer), "disk"], check=True)
    _crafted(plain_registry, "evil/sparse:1", [(layer.read_bytes(), TAR, None)])
    with pytest.raises(errors.UnsafeDisk, match="sparse"):
        _populate(plain_registry, "evil/sparse:1", tmp_path / "out.img")


def test_whiteouts_hide_lower_disks(plain_registry, disks, tmp_path):
    steps = [
        (str(disks["other"]), "/disk/old.img"),
        ("--whiteout", "/disk/old.img"),
        (str(disks["raw"]), "/disk/new.img"),
    ]
    skopeo_copy(umoci_container_disk(tmp_path / "l", "t", steps), plain_registry, "wh/disk:1")
    result = _populate(plain_registry, "wh/disk:1", tmp_path / "out.img")
    assert (tmp_path / "out.img").read_bytes() == disks["raw"].read_bytes()
    assert result.kind == sources.CONTAINER_DISK
    # A disk whited out above with nothing else left: no disk.
    steps = [(str(disks["raw"]), "/disk/disk.img"), ("--whiteout", "/disk/disk.img")]
    skopeo_copy(umoci_container_disk(tmp_path / "l2", "t", steps), plain_registry, "wh/gone:1")
    with pytest.raises(errors.DiskNotFound):
        _populate(plain_registry, "wh/gone:1", tmp_path / "gone.img")


def test_disk_in_lower_layer_under_unrelated_upper_layer(plain_registry, disks, tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "motd").write_text("hello\n")
    steps = [(str(disks["raw"]), "/disk/disk.img"), (str(tmp_path / "etc"), "/etc")]
    skopeo_copy(umoci_container_disk(tmp_path / "l", "t", steps), plain_registry, "two/disk:1")
    _populate(plain_registry, "two/disk:1", tmp_path / "out.img")
    assert (tmp_path / "out.img").read_bytes() == disks["raw"].read_bytes()


def test_image_without_disk(plain_registry, tmp_path):
    layer = tar_layer([(_entry("etc/hostname", size=3), b"vm\n")])
    _crafted(plain_registry, "none/disk:1", [(layer, TAR, None)])
    with pytest.raises(errors.DiskNotFound, match="no regular file under disk/"):
        _populate(plain_registry, "none/disk:1", tmp_path / "out.img")


def test_bomb_tar_declares_more_than_target(plain_registry, tmp_path):
    """A tar entry declaring 256 MiB of zeros (256 KiB gzipped) into an 8 MiB target."""
    size = 256 * MiB

    class Zeros:
        remaining = size

        def read(self, n: int = -1) -> bytes:
            n = min(n if n >= 0 else self.remaining, self.remaining, MiB)
            self.remaining -= n
            return bytes(n)

    buf = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9) as gz,
        tarfile.open(fileobj=gz, mode="w|") as tar,
    ):
        tar.addfile(_entry("disk/disk.img", size=size), Zeros())
    assert len(buf.getvalue()) < MiB
    _crafted(plain_registry, "bomb/tar:1", [(buf.getvalue(), TAR_GZ, None)])
    with pytest.raises(errors.TargetTooSmall, match="8Mi"):
        _populate(plain_registry, "bomb/tar:1", tmp_path / "out.img", target_size="8Mi")
    assert not (tmp_path / "out.img").exists()  # refused before a byte was written


def test_bomb_artifact_exceeds_declared_size(plain_registry, tmp_path):
    data = make_disk(tmp_path / "d.raw", 4 * MiB, ((0, MiB),)).read_bytes()
    layer = zstandard.ZstdCompressor().compress(data)
    notes = {oci.ANNOTATION_UNCOMPRESSED_SIZE: str(MiB)}  # lies: 4 MiB inside
    _crafted(
        plain_registry,
        "bomb/declared:1",
        [(layer, oci.disk_media_type("raw", "zstd"), notes)],
    )
    with pytest.raises(errors.DiskTooLarge):
        _populate(plain_registry, "bomb/declared:1", tmp_path / "out.img")


def test_bomb_artifact_exceeds_target_size(plain_registry, tmp_path):
    """512 MiB of zeros, zstd-compressed to a few KiB, undeclared, into a 16 MiB target."""
    cctx = zstandard.ZstdCompressor(write_content_size=False)
    chunk = cctx.compressobj()
    parts = [chunk.compress(bytes(MiB)) for _ in range(512)]
    layer = b"".join(parts) + chunk.flush()
    assert len(layer) < MiB
    _crafted(plain_registry, "bomb/zeros:1", [(layer, oci.disk_media_type("raw", "zstd"), None)])
    with pytest.raises(errors.DiskTooLarge, match="16777216"):
        _populate(plain_registry, "bomb/zeros:1", tmp_path / "out.img", target_size="16Mi")


def test_qcow2_with_backing_file_is_refused(plain_registry, disks, tmp_path):
    base = to_qcow2(disks["raw"], tmp_path / "base.qcow2")
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(overlay)],
        check=True,
    )
    layer = tar_layer(
        [(_entry("disk/disk.img", size=overlay.stat().st_size), overlay.read_bytes())]
    )
    _crafted(plain_registry, "evil/backing:1", [(layer, TAR, None)])
    with pytest.raises(errors.BackingFileRefused):
        _populate(plain_registry, "evil/backing:1", tmp_path / "out.img")


def test_artifact_label_must_match_bytes(plain_registry, disks, tmp_path):
    _crafted(
        plain_registry,
        "evil/label:1",
        [(disks["qcow2"].read_bytes(), oci.disk_media_type("raw", "none"), None)],
    )
    with pytest.raises(errors.UnsupportedFormat, match="labelled raw but its bytes are qcow2"):
        _populate(plain_registry, "evil/label:1", tmp_path / "out.img")


def test_compression_is_taken_from_the_bytes_not_the_label(plain_registry, disks, tmp_path):
    """A gzip layer typed as plain tar, and a plain tar typed as zstd, still import."""
    tar = tar_layer([(_entry("disk/disk.img", size=4 * MiB), disks["raw"].read_bytes())])
    _crafted(plain_registry, "label/gz:1", [(gzip.compress(tar), TAR, None)])
    _crafted(plain_registry, "label/zst:1", [(tar, TAR + "+zstd", None)])
    for repo in ("label/gz:1", "label/zst:1"):
        _populate(plain_registry, repo, tmp_path / "out.img")
        assert (tmp_path / "out.img").read_bytes() == disks["raw"].read_bytes()
