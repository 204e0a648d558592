"""qcow2 containerDisks decoded in one pass: byte-identical to ``qemu-img convert -O raw``
on images made by qemu-img and qemu-io, the scratch path when the decoder cannot take an
image, and hostile headers and tables refused with a clear error."""

from __future__ import annotations

import struct
import subprocess
import tarfile
import zlib
from pathlib import Path

import pytest

from tests.support.images import MiB, push_crafted, tar_layer
from tests.support.measure import run_populate
from vmdiskimage import errors, push, sources
from vmdiskimage.populate import populate

pytestmark = pytest.mark.registry

KiB = 1 << 10
TAR = "application/vnd.oci.image.layer.v1.tar"
#: The target of the issue: the whole populate process, interpreter included.
PEAK_RSS_LIMIT = 64 * MiB


def _qemu_io(image: Path, *commands: str) -> None:
    args = ["qemu-io", "-f", "qcow2"]
    for command in commands:
        args += ["-c", command]
    subprocess.run([*args, str(image)], check=True, capture_output=True)


def _written_out_of_order(path: Path, compat: str, cluster_size: int) -> Path:
    """Data written at guest offsets out of order, partial clusters, zero clusters, holes.

    The virtual size is not a multiple of the cluster size, so the last cluster is cut.
    """
    size = 24 * MiB + 7 * 512
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2",
         "-o", f"compat={compat},cluster_size={cluster_size}", str(path), str(size)],
        check=True,
    )  # fmt: skip
    _qemu_io(
        path,
        "write -P 0xa1 20M 1M",
        "write -P 0xa2 0 300k",
        "write -P 0xa3 7340544 64k",  # 7 MiB + 512: inside a cluster
        "write -z 20608k 256k",  # zeros inside the data written first
        "write -P 0xa4 12M 4k",
        f"write -P 0xa5 {size - 5 * 512} 2560",  # the cut last cluster
        "write -z 16M 2M",  # zeros where nothing was written: a hole (or a zero cluster)
        "write -P 0xa6 2M 1536k",
    )
    return path


def _convert(src: Path, dest: Path, *options: str) -> Path:
    subprocess.run(
        ["qemu-img", "convert", "-O", "qcow2", *options, str(src), str(dest)], check=True
    )
    return dest


def _reference_raw(image: Path) -> bytes:
    raw = image.with_suffix(".ref.raw")
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(image), str(raw)], check=True)
    return raw.read_bytes()


def _push_container_disk(registry, image: Path, repo_tag: str) -> str:
    ref = f"{registry.url}/{repo_tag}"
    with registry.client() as client:
        push.push(image, ref, kind=sources.CONTAINER_DISK, comp="gzip", client=client)
    return ref


def _import(registry, ref: str, target: Path, **kw):
    with registry.client() as client:
        return populate(ref, target, client=client, scratch_dir=target.parent, **kw)


def _images(work: Path) -> dict[str, Path]:
    """name -> qcow2 file: v2 and v3, 4 KiB to 2 MiB clusters, plain and compressed."""
    images = {}
    for compat in ("0.10", "1.1"):
        for cluster_size in (4 * KiB, 64 * KiB, 2 * MiB):
            name = f"v{compat}-{cluster_size >> 10}k"
            src = _written_out_of_order(work / f"{name}.qcow2", compat, cluster_size)
            images[f"{name}-qemu-io"] = src
            opts = ("-o", f"compat={compat},cluster_size={cluster_size}")
            images[f"{name}-converted"] = _convert(src, work / f"{name}-conv.qcow2", *opts)
            images[f"{name}-deflate"] = _convert(src, work / f"{name}-c.qcow2", "-c", *opts)
            if compat == "1.1":
                zstd = ("-c", "-o", f"compat=1.1,cluster_size={cluster_size},compression_type=zstd")
                images[f"{name}-zstd"] = _convert(src, work / f"{name}-zstd.qcow2", *zstd)
    return images


@pytest.fixture(scope="module")
def qcow2_images(plain_registry, tmp_path_factory) -> dict[str, tuple[str, bytes]]:
    """name -> (reference of its gzip containerDisk, what qemu-img convert -O raw makes)."""
    work = tmp_path_factory.mktemp("qcow2")
    pushed = {}
    for name, image in _images(work).items():
        ref = _push_container_disk(plain_registry, image, f"qcow2/{name.replace('.', '-')}:1")
        pushed[name] = (ref, _reference_raw(image))
    return pushed


NAMES = [
    f"v{compat}-{cs}k-{kind}"
    for compat in ("0.10", "1.1")
    for cs in (4, 64, 2048)
    for kind in ("qemu-io", "converted", "deflate", *(("zstd",) if compat == "1.1" else ()))
]


@pytest.mark.parametrize("name", NAMES)
def test_stream_decoder_matches_qemu_img(plain_registry, qcow2_images, tmp_path, name):
    ref, expected = qcow2_images[name]
    target = tmp_path / "disk.img"
    result = _import(plain_registry, ref, target)
    assert result.decoder == "stream", result.scratch_reason
    assert (result.source_format, result.scratch_bytes) == ("qcow2", 0)
    assert target.stat().st_size == len(expected) == result.virtual_size
    assert target.read_bytes() == expected
    # Sparse: holes stay holes (the data written above is under 6 MiB).
    assert target.stat().st_blocks * 512 < 8 * MiB


def test_table_after_its_data_takes_the_scratch_path(plain_registry, tmp_path):
    """A snapshot makes the next write copy the L2 table to the end of the file, after the
    clusters it still maps: the stream has passed them when the table arrives."""
    image = _written_out_of_order(tmp_path / "snap.qcow2", "1.1", 64 * KiB)
    subprocess.run(["qemu-img", "snapshot", "-c", "s1", str(image)], check=True)
    _qemu_io(image, "write -P 0xb1 64k 4k")
    expected = _reference_raw(image)
    ref = _push_container_disk(plain_registry, image, "qcow2/snapshot:1")
    target = tmp_path / "disk.img"
    result = _import(plain_registry, ref, target)
    assert result.decoder == "scratch"
    assert "comes after the stream passed it" in result.scratch_reason
    assert result.scratch_bytes > 0
    assert target.read_bytes() == expected


def test_qcow2_target_still_converts_through_scratch(plain_registry, qcow2_images, tmp_path):
    ref, _ = qcow2_images["v1.1-64k-deflate"]
    result = _import(plain_registry, ref, tmp_path / "disk.qcow2", target_format="qcow2")
    assert (result.decoder, result.scratch_reason) == ("scratch", None)


def test_compressed_qcow2_streams_within_64_mib(plain_registry, tmp_path):
    """256 MiB of data in compressed clusters: the whole process stays under 64 MiB."""
    raw = tmp_path / "data.raw"
    with open(raw, "wb") as fh:
        for i in range(256):
            fh.write(bytes([i]) * 512 * KiB + (i * 7919).to_bytes(4, "big") * (128 * KiB))
    image = _convert(raw, tmp_path / "c.qcow2", "-f", "raw", "-c")
    ref = _push_container_disk(plain_registry, image, "qcow2/mem:1")
    target = tmp_path / "out.img"
    run = run_populate([f"--source={ref}", f"--target={target}", "--plain-http"], tmp_path / "run")
    assert run.returncode == 0, run.stderr
    assert run.message["decoder"] == "stream", run.message
    assert run.message["scratchBytes"] == 0
    assert run.peak_rss <= PEAK_RSS_LIMIT, f"peak RSS {run.peak_rss >> 20} MiB"
    assert target.read_bytes() == raw.read_bytes()


# -- hostile images --------------------------------------------------------------------


def _base(tmp_path: Path, *, compat: str = "1.1", compressed: bool = False) -> bytearray:
    """A small valid qcow2 (64 KiB clusters): header, L1 at 3 clusters, one L2, data."""
    image = tmp_path / "base.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"compat={compat}", str(image), "8M"],
        check=True,
    )
    _qemu_io(image, "write -P 0x5a 1M 128k")
    if compressed:
        image = _convert(image, tmp_path / "base-c.qcow2", "-c", "-o", f"compat={compat}")
    return bytearray(image.read_bytes())


def _l1_entry_offset(image: bytearray) -> int:
    return struct.unpack_from(">Q", image, 40)[0]


def _first_l2_entry_offset(image: bytearray) -> int:
    """File offset of the first allocated entry of the first L2 table."""
    l2 = struct.unpack_from(">Q", image, _l1_entry_offset(image))[0] & 0x00FFFFFFFFFFFE00
    for i in range(0, 64 * KiB, 8):
        if struct.unpack_from(">Q", image, l2 + i)[0]:
            return l2 + i
    raise AssertionError("no allocated L2 entry")


def _set(image: bytearray, offset: int, fmt: str, value: int) -> bytearray:
    struct.pack_into(fmt, image, offset, value)
    return image


def _hostile(tmp_path: Path, kind: str) -> bytes:
    if kind == "cluster-bits-22":
        return _set(_base(tmp_path), 20, ">I", 22)
    if kind == "cluster-bits-8":
        return _set(_base(tmp_path), 20, ">I", 8)
    if kind == "l1-too-small":
        return _set(_base(tmp_path), 36, ">I", 0)
    if kind == "l1-larger-than-qemu-allows":
        image = _set(_base(tmp_path), 24, ">Q", 1 << 56)  # virtual size 64 PiB
        return _set(image, 36, ">I", (1 << 56) >> 29)
    if kind == "l2-outside-the-file":
        image = _base(tmp_path)
        return _set(image, _l1_entry_offset(image), ">Q", (1 << 63) | (1 << 40))
    if kind == "data-outside-the-file":
        image = _base(tmp_path)
        return _set(image, _first_l2_entry_offset(image), ">Q", (1 << 63) | (1 << 40))
    if kind == "data-not-cluster-aligned":
        image = _base(tmp_path)
        entry = _first_l2_entry_offset(image)
        value = struct.unpack_from(">Q", image, entry)[0]
        return _set(image, entry, ">Q", value + 4096)
    if kind == "zero-cluster-in-version-2":
        image = _base(tmp_path, compat="0.10")
        entry = _first_l2_entry_offset(image)
        return _set(image, entry, ">Q", struct.unpack_from(">Q", image, entry)[0] | 1)
    if kind == "unknown-incompatible-feature":
        return _set(_base(tmp_path), 72, ">Q", 1 << 5)
    if kind == "encrypted":
        return _set(_base(tmp_path), 32, ">I", 1)
    if kind == "extended-l2":
        image = tmp_path / "extl2.qcow2"
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "extended_l2=on", str(image), "8M"],
            check=True,
        )
        _qemu_io(image, "write -P 0x5a 1M 128k")
        return image.read_bytes()
    if kind == "compressed-garbage":
        image = _base(tmp_path, compressed=True)
        entry = struct.unpack_from(">Q", image, _first_l2_entry_offset(image))[0]
        host = entry & ((1 << 54) - 1)
        image[host : host + 64] = bytes(range(64))
        return image
    if kind == "compressed-inflates-short":
        image = _base(tmp_path, compressed=True)
        entry_at = _first_l2_entry_offset(image)
        entry = struct.unpack_from(">Q", image, entry_at)[0]
        host = entry & ((1 << 54) - 1)
        short = zlib.compressobj(9, zlib.DEFLATED, -12)
        data = short.compress(b"\x01" * 100) + short.flush()
        image[host : host + len(data)] = data
        return image
    raise AssertionError(kind)


HOSTILE = {
    "cluster-bits-22": (errors.CorruptData, "cluster_bits 22 is outside 9..21"),
    "cluster-bits-8": (errors.CorruptData, "cluster_bits 8 is outside 9..21"),
    "l1-too-small": (errors.CorruptData, "L1 table of 0 entries is too small"),
    "l1-larger-than-qemu-allows": (errors.CorruptData, "larger than qemu allows"),
    "l2-outside-the-file": (errors.CorruptData, "an L2 table offset 1099511627776 lies outside"),
    "data-outside-the-file": (errors.CorruptData, "a data cluster offset 1099511627776 lies"),
    "data-not-cluster-aligned": (errors.CorruptData, "is not cluster aligned"),
    "zero-cluster-in-version-2": (errors.CorruptData, "version 2 disk holds a zero cluster"),
    "unknown-incompatible-feature": (errors.UnsupportedFormat, "incompatible feature bits 5"),
    "encrypted": (errors.UnsupportedFormat, "is encrypted"),
    "extended-l2": (errors.UnsupportedFormat, "extended L2 entries"),
    "compressed-garbage": (errors.CorruptData, "does not inflate"),
    "compressed-inflates-short": (errors.CorruptData, "inflates to 100 bytes"),
}


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_qcow2_is_refused(plain_registry, tmp_path, kind):
    error, text = HOSTILE[kind]
    disk = bytes(_hostile(tmp_path, kind))
    info = tarfile.TarInfo("disk/disk.img")
    info.size = len(disk)
    with plain_registry.client() as client:
        push_crafted(client, "hostile/qcow2", kind, [(tar_layer([(info, disk)]), TAR, None)])
    target = tmp_path / "out.img"
    with pytest.raises(error) as raised:
        _import(plain_registry, f"{plain_registry.url}/hostile/qcow2:{kind}", target)
    assert text in raised.value.message
    assert not target.exists() or target.stat().st_size == 0  # nothing of it stays
