"""Fixture disks, and images built with independent tools (umoci, skopeo, hand-made layouts).

Fixtures are small sparse raw disks with random data in a few extents, so every
content check is an exact byte comparison and sparseness is measurable.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path

from vmdiskimage.oci import OCI_INDEX, OCI_MANIFEST
from vmdiskimage.registry import RegistryClient

MiB = 1 << 20
POLICY = Path("/etc/containers/policy.json")
OCI_EMPTY = "application/vnd.oci.empty.v1+json"


def ensure_policy_json() -> None:
    """skopeo needs a signature policy; create a permissive one only if none exists."""
    if not POLICY.exists():
        POLICY.parent.mkdir(parents=True, exist_ok=True)
        POLICY.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))


def make_disk(
    path: Path,
    size: int = 4 * MiB,
    extents: Iterable[tuple[int, int]] = ((0, 64 * 1024), (2 * MiB, 256 * 1024)),
    seed: int = 1,
) -> Path:
    """A sparse raw disk of ``size`` bytes with random data at ``extents`` (offset, length)."""
    rng = random.Random(seed)
    with open(path, "wb") as fh:
        fh.truncate(size)
        for offset, length in extents:
            fh.seek(offset)
            fh.write(rng.randbytes(length))
    return path


def data_bytes(path: Path, block: int = 4096) -> int:
    """Bytes in non-zero ``block``-sized blocks of a file."""
    total = 0
    zero = bytes(block)
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            if chunk != zero[: len(chunk)]:
                total += len(chunk)
    return total


def allocated_bytes(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def to_qcow2(raw: Path, dest: Path, *extra: str) -> Path:
    subprocess.run(
        ["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", *extra, str(raw), str(dest)],
        check=True,
    )
    return dest


def make_iso(dest: Path, workdir: Path, files: int = 3, seed: int = 1) -> Path:
    """An ISO 9660 image written by xorriso (as driver CDs such as virtio-win are made)
    of a directory of ``files`` files of random bytes."""
    rng = random.Random(seed)
    tree = workdir / "iso-tree"
    (tree / "drivers").mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (tree / "drivers" / f"driver{i}.sys").write_bytes(rng.randbytes(100 * 1024 + i))
    subprocess.run(
        ["xorriso", "-as", "mkisofs", "-quiet", "-V", "VIRTIO", "-J", "-o", str(dest), str(tree)],
        check=True,
        capture_output=True,
    )
    return dest


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def compress_file(src: Path, dest: Path, comp: str) -> Path:
    """Compress with the command-line tools (gzip, zstd, xz), not our code."""
    tool = {"gzip": ["gzip", "-c", "-n"], "zstd": ["zstd", "-q", "-c"], "xz": ["xz", "-c", "-T1"]}
    if comp == "none":
        shutil.copyfile(src, dest)
        return dest
    with open(dest, "wb") as out:
        subprocess.run([*tool[comp], str(src)], stdout=out, check=True)
    return dest


# -- OCI layouts written by hand / by umoci, copied to a registry by skopeo -----------


class Layout:
    """A hand-written OCI image layout directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        self.index: list[dict] = []

    def blob(self, data: bytes, media_type: str, **extra: object) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (self.path / "blobs" / "sha256" / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data), **extra}

    def blob_file(self, src: Path, media_type: str, **extra: object) -> dict:
        digest = sha256_file(src)
        shutil.copyfile(src, self.path / "blobs" / "sha256" / digest)
        return {
            "mediaType": media_type,
            "digest": f"sha256:{digest}",
            "size": src.stat().st_size,
            **extra,
        }

    def manifest(self, layers: list[dict], config: dict | None = None, **extra: object) -> dict:
        config = config or self.blob(b"{}", OCI_EMPTY)
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}
        doc.update(extra)
        return self.blob(json.dumps(doc).encode(), OCI_MANIFEST)

    def tag(self, descriptor: dict, tag: str) -> None:
        entry = dict(descriptor)
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.index.append(entry)
        (self.path / "index.json").write_text(
            json.dumps({"schemaVersion": 2, "manifests": self.index})
        )

    def image_index(self, manifests: list[dict]) -> dict:
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        return self.blob(json.dumps(doc).encode(), OCI_INDEX)


def skopeo_copy(src: str, registry, dest: str, *extra: str) -> None:  # type: ignore[no-untyped-def]
    """``skopeo copy src docker://<registry>/<dest>`` with the registry's TLS and creds."""
    ensure_policy_json()
    cmd = ["skopeo", "copy", "-q", *registry.skopeo_dest_args(), *extra, src]
    cmd.append(f"docker://{registry.url}/{dest}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr}")


def oras_push(oras: str, registry, dest: str, path: Path, *extra: str) -> str:  # type: ignore[no-untyped-def]
    """``oras push <registry>/<dest> <file>`` as users run it, with oras's defaults, from the
    file's directory (the layer's ``org.opencontainers.image.title`` is the path given).
    Returns the reference."""
    assert not registry.tls and not registry.auth, "oras_push talks to plain registries"
    ref = f"{registry.url}/{dest}"
    cmd = [oras, "push", "--plain-http", "--no-tty", *extra, ref, path.name]
    proc = subprocess.run(cmd, cwd=path.parent, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr}")
    return ref


def kubevirt_vm_export(layout: Path, volumes: dict[str, Path], tag: str = "export") -> str:
    """A VM exported the way KubeVirt writes it (its VEP 256 format), as an OCI layout: an
    image index for linux/amd64, a manifest of artifactType virtualmachine.v1 whose config
    is the VM, and one raw+zstd layer per volume, named by ``io.kubevirt.disk.name`` and
    sized by ``io.kubevirt.disk.size``. Returns ``oci:<layout>:<tag>`` for skopeo."""
    out = Layout(layout)
    layers = []
    for volume, disk in volumes.items():
        # zstd from a pipe, as a streaming encoder writes it: no content size in the frame.
        with open(disk, "rb") as src:
            blob = subprocess.run(["zstd", "-q", "-c"], stdin=src, capture_output=True).stdout
        size = disk.stat().st_size
        annotations = {
            "io.kubevirt.disk.name": volume,
            # A quantity, as KubeVirt writes it (resource.NewQuantity(size, BinarySI)).
            "io.kubevirt.disk.size": f"{size // MiB}Mi" if size % MiB == 0 else str(size),
            "org.opencontainers.image.title": f"{volume}.raw.zst",
        }
        layers.append(
            out.blob(blob, "application/vnd.kubevirt.disk.raw+zstd", annotations=annotations)
        )
    vm = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "vm"}}
    config = out.blob(
        json.dumps(vm).encode(), "application/vnd.kubevirt.virtualmachine.config.v1+json"
    )
    manifest = out.manifest(
        layers, config, artifactType="application/vnd.kubevirt.virtualmachine.v1"
    )
    platform = {"os": "linux", "architecture": "amd64"}
    out.tag(out.image_index([{**manifest, "platform": platform}]), tag)
    return f"oci:{layout}:{tag}"


def umoci_container_disk(layout: Path, tag: str, steps: list[tuple[str, ...]]) -> str:
    """Build a containerDisk with umoci; each step is ``(source, target)``, or
    ``("--whiteout", target)``, and becomes one layer. Returns ``oci:<layout>:<tag>``."""
    if not (layout / "index.json").exists():
        subprocess.run(["umoci", "init", "--layout", str(layout)], check=True)
    subprocess.run(["umoci", "new", "--image", f"{layout}:{tag}"], check=True)
    for step in steps:
        subprocess.run(
            ["umoci", "insert", "--rootless", "--image", f"{layout}:{tag}", *step],
            check=True,
            capture_output=True,
        )
    return f"oci:{layout}:{tag}"


def tar_layer(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """An uncompressed tar made with :mod:`tarfile` from (TarInfo, data) pairs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def push_crafted(
    client: RegistryClient,
    repository: str,
    tag: str,
    layers: list[tuple[bytes, str, dict[str, str] | None]],
    *,
    config: bytes = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}',
    config_type: str = "application/vnd.oci.image.config.v1+json",
) -> str:
    """Push an image of hand-made layers (blob bytes, media type, annotations) directly."""
    descs = []
    for data, media_type, notes in [(config, config_type, None), *layers]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        client.upload_blob(repository, digest, len(data), lambda d=data: io.BytesIO(d))
        desc = {"mediaType": media_type, "digest": digest, "size": len(data)}
        if notes:
            desc["annotations"] = notes
        descs.append(desc)
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descs[0], "layers": descs[1:]}
    return client.put_manifest(repository, tag, json.dumps(doc).encode(), OCI_MANIFEST)
