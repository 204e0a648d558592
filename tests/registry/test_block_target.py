"""A real block device target: a loop device over a sparse file.

The device is filled with garbage first; after the import it must read back exactly
the disk (zeros where the disk has holes), and the backing file must stay sparse,
which shows zero blocks were discarded rather than written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.images import MiB, allocated_bytes, data_bytes, make_disk
from vmdiskimage import errors, push, sources
from vmdiskimage.populate import populate

pytestmark = pytest.mark.registry


@pytest.fixture
def loop_device(tmp_path):
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        pytest.skip("needs root and losetup for a loop device")
    backing = tmp_path / "backing.img"
    with open(backing, "wb") as fh:
        fh.truncate(32 * MiB)
    proc = subprocess.run(
        ["losetup", "--find", "--show", str(backing)], capture_output=True, text=True
    )
    if proc.returncode:
        pytest.skip(f"no loop device available: {proc.stderr.strip()}")
    device = Path(proc.stdout.strip())
    try:
        with open(device, "r+b") as fh:  # garbage from a previous tenant
            fh.write(b"\xaa" * (32 * MiB))
            fh.flush()
            os.fsync(fh.fileno())
        yield device, backing
    finally:
        subprocess.run(["losetup", "--detach", str(device)], check=False)


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_populate_block_device(plain_registry, disks, loop_device, fmt):
    device, backing = loop_device
    ref = f"{plain_registry.url}/block/disk:{fmt}"
    with plain_registry.client() as client:
        push.push(disks[fmt], ref, kind=sources.CONTAINER_DISK, comp="gzip", client=client)
        result = populate(ref, device, client=client)
    raw = disks["raw"].read_bytes()
    with open(device, "rb") as fh:
        content = fh.read()
    assert content[: len(raw)] == raw
    assert content[len(raw) :] == bytes(32 * MiB - len(raw))
    assert result.virtual_size == 32 * MiB
    assert allocated_bytes(backing) <= data_bytes(disks["raw"]) + 256 * 1024


def test_block_device_too_small(plain_registry, loop_device, tmp_path):
    device, _ = loop_device
    disk = make_disk(tmp_path / "big.raw", 40 * MiB, ((0, MiB),))
    ref = f"{plain_registry.url}/block/big:1"
    with plain_registry.client() as client:
        push.push(disk, ref, comp="zstd", client=client)
        with pytest.raises(errors.TargetTooSmall):
            populate(ref, device, client=client)


def test_failed_import_clears_the_device(plain_registry, loop_device, tmp_path):
    """The digest check fails at the end: what was written must not stay on the device."""
    device, _ = loop_device
    disk = make_disk(tmp_path / "d.raw", 8 * MiB, ((0, 2 * MiB), (6 * MiB, MiB)), seed=22)
    ref = f"{plain_registry.url}/block/corrupt:1"
    with plain_registry.client() as client:
        pushed = push.push(disk, ref, comp="none", client=client)
    stored = plain_registry.blob_data_path(pushed.layer_digest)
    data = bytearray(stored.read_bytes())
    data[4 * MiB] ^= 0xFF  # a zero block of the disk
    stored.write_bytes(bytes(data))
    with plain_registry.client() as client, pytest.raises(errors.DigestMismatch) as exc:
        populate(ref, device, client=client)
    with open(device, "rb") as fh:
        assert fh.read() == bytes(32 * MiB), "image bytes stayed on the device"
    assert exc.value.details["targetCleared"] == "discarded"
