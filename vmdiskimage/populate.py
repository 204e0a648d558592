# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""``vmdiskimage-populate``: what the populator pod runs.

One pass: registry -> decompress -> (tar walk) -> (qcow2 decode) -> sparse write ->
grow to the target size -> digest verified -> fsync -> result in the termination
message. Raw sources, and qcow2 sources written as raw, never touch a scratch area
(:mod:`vmdiskimage.qcow2`); other formats, other targets and the qcow2 images the
streaming decoder cannot take are written sparsely to a scratch file
(``--scratch-dir``) and converted with qemu-img.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import formats, qcow2, sizing
from .errors import (
    BackingFileRefused,
    CorruptData,
    CredentialsError,
    ExternalFileRefused,
    InvalidArgument,
    TargetError,
    TargetTooSmall,
    UnsupportedFormat,
    VMDiskImageError,
    redact,
)
from .libc import libc
from .oci import Platform
from .progress import Progress, configure_logging, write_termination_message
from .reference import ImageReference
from .registry import DEFAULT_OPTIONS, RegistryClient, RegistryOptions
from .sources import DiskStream, open_disk
from .writer import DiskWriter, clear_target, is_block_device

log = logging.getLogger("vmdiskimage.populate")

DISK_FILE_NAME = "disk.img"
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
SUPPORTED_SOURCE_FORMATS = (
    *formats.RAW_DATA_FORMATS,
    formats.QCOW2,
    formats.VMDK,
    formats.VHD,
    formats.VHDX,
)
DECODER_STREAM = "stream"
DECODER_SCRATCH = "scratch"


@dataclass
class PopulateResult:
    """What a successful import did (the termination message fields, camelCased there)."""

    digest: str
    index_digest: str | None
    layer_digest: str
    kind: str
    source_format: str
    target_format: str
    virtual_size: int
    bytes_written: int
    seconds: float
    target: str
    resumes: int = 0  # broken transfers of the disk layer resumed with Range requests
    decoder: str = DECODER_STREAM  # stream: one pass into the target; scratch: qemu-img
    scratch_bytes: int = 0  # bytes the scratch file took on disk
    scratch_reason: str | None = None  # why a qcow2 source took the scratch path
    disk_name: str | None = None  # the name of the artifact's disk layer, if it has one

    def to_message(self) -> dict[str, Any]:
        data = asdict(self)
        parts = {
            k: "".join(w.capitalize() if i else w for i, w in enumerate(k.split("_"))) for k in data
        }
        return {"result": "Succeeded", **{parts[k]: v for k, v in data.items()}}


def resolve_target(target: str | Path) -> Path:
    """A block device as is; a directory (a Filesystem volume mount) gets ``disk.img``."""
    path = Path(target)
    if path.is_dir():
        return path / DISK_FILE_NAME
    return path


@dataclass
class _Attempt:
    """What a failure must undo: whether bytes of the image may be on the target."""

    target_touched: bool = False


def _check_source(disk: DiskStream) -> None:
    info = disk.info
    if info.format not in SUPPORTED_SOURCE_FORMATS:
        raise UnsupportedFormat(f"{info.format} disk images are not supported as a source")
    if info.has_backing_file:
        raise BackingFileRefused(
            f"the {info.format} disk names a backing file; flatten it before publishing"
        )
    if info.external_file:
        raise ExternalFileRefused(
            f"the {info.format} disk names {info.external_file}: qemu-img would open that "
            "file of the importing pod; publish a self-contained image"
        )


def _copy_raw(
    disk: DiskStream,
    target: Path,
    target_size: str | int | None,
    progress: Progress,
    attempt: _Attempt,
) -> tuple[int, int]:
    info = disk.info
    requested = sizing.requested_size(target_size)
    declared = info.disk_size
    if declared is not None:
        sizing.target_virtual_size(declared, requested)  # refuse a too small target up front
    limit_candidates = [x for x in (declared, requested) if x is not None]
    limit = min(limit_candidates) if limit_candidates else None
    writer = DiskWriter(target, limit=limit)
    attempt.target_touched = True
    try:
        if writer.capacity is not None and declared is not None and declared > writer.capacity:
            raise TargetTooSmall(
                f"block device {target} holds {writer.capacity} bytes; the disk is {declared}",
                target_size=writer.capacity,
                virtual_size=declared,
            )
        writer.copy_from(disk, progress=progress.update)
        disk.finish()  # the digest is verified before the target is finalised
        if declared is not None and writer.offset != declared:
            raise CorruptData(
                f"the disk ended after {writer.offset} of the {declared} bytes it declared"
            )
        virtual = sizing.target_virtual_size(writer.offset, requested)
        progress.set_phase("Resizing")
        writer.finish(virtual if writer.capacity is None else writer.offset)
    finally:
        writer.close()
    return virtual if writer.capacity is None else writer.capacity, writer.bytes_written


def _copy_qcow2(
    disk: DiskStream,
    target: Path,
    target_size: str | int | None,
    progress: Progress,
    attempt: _Attempt,
) -> tuple[int, int]:
    """Decode a qcow2 source into a raw target in one pass (raises qcow2.NeedsScratch)."""
    info = disk.info
    header = qcow2.parse_header(disk.head)
    requested = sizing.requested_size(target_size)
    virtual = sizing.target_virtual_size(header.size, requested)
    obstacle = qcow2.stream_obstacle(header)
    if obstacle:
        raise qcow2.NeedsScratch(obstacle, restart=False)
    writer = DiskWriter(target, limit=header.size)
    attempt.target_touched = True
    try:
        if writer.is_block:
            if not writer.zeroed:
                # Holes must read as zeros; qemu-img writes them on such a device.
                raise qcow2.NeedsScratch(
                    f"block device {target} cannot be discarded to zeros", restart=False
                )
            assert writer.capacity is not None
            if writer.capacity < header.size:
                raise TargetTooSmall(
                    f"block device {target} holds {writer.capacity} bytes, the disk needs "
                    f"{header.size}",
                    target_size=writer.capacity,
                    virtual_size=header.size,
                )
            virtual = writer.capacity
        limit = info.disk_size
        if limit is None:
            limit = sizing.container_file_limit(header.size)
        decoder = qcow2.StreamDecoder(
            header, disk, writer, file_size=info.disk_size, limit=limit, progress=progress.update
        )
        decoder.run()
        disk.finish()  # the digest is verified before the target is finalised
        progress.set_phase("Resizing")
        writer.finish(virtual)
    finally:
        writer.close()
    return virtual, writer.bytes_written


def _copy_converted(
    disk: DiskStream,
    target: Path,
    target_size: str | int | None,
    target_format: str,
    scratch_dir: str | Path | None,
    progress: Progress,
    attempt: _Attempt,
) -> tuple[int, int, int]:
    """Write the source to a scratch file, then qemu-img converts it into the target."""
    info = disk.info
    requested = sizing.requested_size(target_size)
    if info.virtual_size is not None:
        sizing.target_virtual_size(info.virtual_size, requested)
    # A container file is a little larger than its data; bound it against disk bombs.
    limit = info.disk_size
    if limit is None and info.virtual_size is not None:
        limit = sizing.container_file_limit(info.virtual_size)
    block = is_block_device(target)
    if block and target_format != formats.RAW:
        raise InvalidArgument(f"format {target_format} cannot be written to a block volume")
    try:
        scratch_area = tempfile.TemporaryDirectory(prefix="vmdiskimage-", dir=scratch_dir)
    except OSError as exc:
        raise TargetError(
            f"cannot create a scratch directory in {scratch_dir or tempfile.gettempdir()} for "
            f"converting the {info.format} disk: {exc.strerror}; mount a volume there or set "
            "--scratch-dir"
        ) from exc
    with scratch_area as tmp:
        scratch = Path(tmp) / f"source.{info.format}"
        writer = DiskWriter(scratch, limit=limit)
        try:
            writer.copy_from(disk, progress=progress.update)
            disk.finish()
            writer.finish(writer.offset)
        finally:
            writer.close()
        scratch_bytes = os.stat(scratch).st_blocks * 512
        progress.set_phase("Converting")
        source_format = formats.qemu_format(info.format)
        details = formats.qemu_img_info(scratch, source_format)
        virtual = sizing.target_virtual_size(int(details["virtual-size"]), requested)
        attempt.target_touched = True
        if block:
            probe = DiskWriter(target)  # discards the device; tells whether it reads zeros
            zeroed, capacity = probe.zeroed, probe.capacity or 0
            probe.close()
            if capacity < virtual:
                raise TargetTooSmall(
                    f"block device {target} holds {capacity} bytes, the disk needs {virtual}",
                    target_size=capacity,
                    virtual_size=virtual,
                )
            formats.qemu_img_convert(
                scratch,
                source_format,
                target,
                formats.RAW,
                target_exists=True,
                target_is_zero=zeroed,
            )
            virtual = capacity
        elif target_format == formats.RAW:
            formats.qemu_img_convert(scratch, source_format, target, target_format)
            progress.set_phase("Resizing")
            os.truncate(target, virtual)
        else:
            # Created at its final size: qemu-img cannot resize every format (vmdk).
            formats.qemu_img_create(target, target_format, virtual)
            formats.qemu_img_convert(
                scratch,
                source_format,
                target,
                target_format,
                target_exists=True,
                target_is_zero=True,
            )
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        written = os.stat(target).st_blocks * 512 if not block else writer.bytes_written
    return virtual, written, scratch_bytes


def _clear_after_failure(target: Path, exc: BaseException) -> None:
    """Leave no unverified or half-written image bytes on the target; say so in ``exc``."""
    if not target.exists():
        return  # nothing reached it
    done = clear_target(target)
    log.warning("the import failed; target %s %s", target, done or "could not be cleared")
    if isinstance(exc, VMDiskImageError):
        exc.details["targetCleared"] = done or "failed"
        if done:
            exc.message += f" (the target was {done}: no unverified data stays on it)"


def populate(
    source: str,
    target: str | Path,
    *,
    target_size: str | int | None = None,
    target_format: str = formats.RAW,
    platform: str | Platform | None = None,
    disk_name: str | None = None,
    registry: RegistryOptions = DEFAULT_OPTIONS,
    scratch_dir: str | Path | None = None,
    progress: Progress | None = None,
    client: RegistryClient | None = None,
) -> PopulateResult:
    """Import the disk of image ``source`` into ``target`` (a file, directory or device).

    ``disk_name`` picks the disk of an image that holds several (a KubeVirt VM export).
    ``registry`` says how to reach the image's registry, unless a ``client`` is given.
    """
    started = time.monotonic()
    if target_format not in formats.TARGET_FORMATS:
        raise InvalidArgument(
            f"format {target_format!r} is not one of {', '.join(formats.TARGET_FORMATS)}"
        )
    reference = ImageReference.parse(source)
    progress = progress or Progress(stream=None)
    own_client = client is None
    if client is None:
        client = RegistryClient.for_reference(reference, registry)
    told_before, client.on_wait = client.on_wait, progress.wait
    try:
        progress.set_phase("ImageFetching")
        resolved = client.resolve(reference, platform)
        target_path = resolve_target(target)
        disk = open_disk(client, resolved, disk_name)
        try:
            _check_source(disk)
            info = disk.info
            progress.total = info.disk_size or info.virtual_size
            progress.set_phase("Copying")
            attempt = _Attempt()
            decoder, scratch_bytes, scratch_reason = DECODER_STREAM, 0, None
            try:
                if info.format in formats.RAW_DATA_FORMATS and target_format == formats.RAW:
                    virtual, written = _copy_raw(disk, target_path, target_size, progress, attempt)
                else:
                    streamed = False
                    if info.format == formats.QCOW2 and target_format == formats.RAW:
                        try:
                            virtual, written = _copy_qcow2(
                                disk, target_path, target_size, progress, attempt
                            )
                            streamed = True
                        except qcow2.NeedsScratch as exc:
                            scratch_reason = str(exc)
                            log.warning(
                                "the qcow2 disk takes the scratch path: %s%s",
                                exc,
                                " (reading the blob again)" if exc.restart else "",
                            )
                            if exc.restart:
                                disk.close()
                                disk = open_disk(client, resolved, disk_name)
                                _check_source(disk)
                    if not streamed:
                        decoder = DECODER_SCRATCH
                        virtual, written, scratch_bytes = _copy_converted(
                            disk,
                            target_path,
                            target_size,
                            target_format,
                            scratch_dir,
                            progress,
                            attempt,
                        )
            except BaseException as exc:
                if attempt.target_touched:
                    _clear_after_failure(target_path, exc)
                raise
            progress.update(disk.bytes_read, force=True)
            resumes = disk.blob.resumes
        finally:
            disk.close()
    finally:
        client.on_wait = told_before
        if own_client:
            client.close()
    return PopulateResult(
        digest=resolved.digest,
        index_digest=resolved.index_digest,
        layer_digest=info.layer.digest,
        kind=info.kind,
        source_format=info.format,
        target_format=target_format,
        virtual_size=virtual,
        bytes_written=written,
        seconds=round(time.monotonic() - started, 3),
        target=str(target_path),
        resumes=resumes,
        decoder=decoder,
        scratch_bytes=scratch_bytes,
        scratch_reason=scratch_reason,
        disk_name=info.disk_name,
    )


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="vmdiskimage-populate",
        description="Stream the disk of an OCI image into a file, directory or block device.",
    )
    parser.add_argument("--source", default=env("VDI_SOURCE"), help="image reference [VDI_SOURCE]")
    parser.add_argument(
        "--target",
        default=env("VDI_TARGET"),
        help="block device, file, or directory (gets disk.img) [VDI_TARGET]",
    )
    parser.add_argument(
        "--target-size",
        default=env("VDI_TARGET_SIZE"),
        help="virtual size, e.g. 20Gi [VDI_TARGET_SIZE]",
    )
    parser.add_argument(
        "--format",
        default=env("VDI_FORMAT", formats.RAW),
        choices=formats.TARGET_FORMATS,
        help="format written to the target [VDI_FORMAT]",
    )
    parser.add_argument(
        "--platform", default=env("VDI_PLATFORM"), help="os/arch[/variant] [VDI_PLATFORM]"
    )
    parser.add_argument(
        "--disk-name",
        default=env("VDI_DISK_NAME") or None,
        help="the disk to import from an image that holds several, by the name its layer "
        "goes by (io.kubevirt.disk.name, else org.opencontainers.image.title) [VDI_DISK_NAME]",
    )
    parser.add_argument(
        "--pull-secret",
        default=env("VDI_PULL_SECRET"),
        help="dockerconfigjson credentials file [VDI_PULL_SECRET]",
    )
    parser.add_argument(
        "--pull-secret-name",
        default=env("VDI_PULL_SECRET_NAME"),
        help="the Secret that file is mounted from (an optional volume): a missing file is "
        "then reported as that Secret missing [VDI_PULL_SECRET_NAME]",
    )
    parser.add_argument("--ca-file", default=env("VDI_CA_FILE"), help="CA bundle [VDI_CA_FILE]")
    parser.add_argument(
        "--plain-http",
        action="store_true",
        default=_env_flag("VDI_PLAIN_HTTP"),
        help="talk HTTP, not HTTPS [VDI_PLAIN_HTTP]",
    )
    parser.add_argument(
        "--insecure-skip-tls-verify",
        action="store_true",
        default=_env_flag("VDI_INSECURE_SKIP_TLS_VERIFY"),
        help="do not verify the registry's certificate [VDI_INSECURE_SKIP_TLS_VERIFY]",
    )
    parser.add_argument(
        "--scratch-dir",
        default=env("VDI_SCRATCH_DIR"),
        help="where non-raw sources are unpacked for qemu-img (default: $TMPDIR) [VDI_SCRATCH_DIR]",
    )
    parser.add_argument(
        "--progress-file",
        default=env("VDI_PROGRESS_FILE"),
        help="JSON progress file [VDI_PROGRESS_FILE]",
    )
    parser.add_argument(
        "--progress-interval",
        type=float,
        default=float(env("VDI_PROGRESS_INTERVAL", "2")),
        help="seconds between progress lines [VDI_PROGRESS_INTERVAL]",
    )
    parser.add_argument(
        "--termination-log",
        default=env("VDI_TERMINATION_LOG", DEFAULT_TERMINATION_LOG),
        help="result file [VDI_TERMINATION_LOG]",
    )
    return parser


def check_pull_secret(path: str | None, secret: str | None) -> None:
    """Refuse a credentials file that was to come from a Secret and did not.

    The operator mounts the pull secret as an optional volume, so that a Secret that does
    not exist (or lacks the key) fails the import with this message and a Warning event
    instead of leaving the pod in ContainerCreating, where nothing reports why.
    """
    if path and secret and not os.path.exists(path):
        raise CredentialsError(
            f"pull secret {secret!r} does not exist in this namespace or has no "
            ".dockerconfigjson key: create it beside the PVC (kubectl create secret "
            "docker-registry) or fix spec.pullSecretName; the import is retried"
        )


#: glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Buffers up to this size come from the heap, and freed memory up to this much stays
#: with the process.
MALLOC_MMAP_THRESHOLD = 4 << 20
MALLOC_TRIM_THRESHOLD = 32 << 20


def keep_freed_memory() -> bool:
    """Let glibc's malloc reuse freed buffers instead of returning them to the kernel.

    The data path allocates a buffer for each 1 MiB read and each compressed run. By
    default glibc maps buffers this large on their own, or trims the heap as soon as
    they are freed, so every new one faults in zeroed pages: 5% of the CPU of a
    compressed-qcow2 import. Peak memory does not grow: freed buffers are reused.
    Returns whether the C library took the settings (not glibc: nothing changes).
    """
    mallopt = getattr(libc(), "mallopt", None)
    if mallopt is None:  # pragma: no cover - a C library without mallopt
        return False
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)
        and mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD)
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; exit 0 on success, 1 on a failed import, 2 on bad arguments."""
    keep_freed_memory()
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(logging.INFO)
    if not args.source or not args.target:
        parser.error("--source and --target (or VDI_SOURCE and VDI_TARGET) are required")
    progress = Progress(path=args.progress_file, interval=args.progress_interval)
    try:
        check_pull_secret(args.pull_secret, args.pull_secret_name)
        result = populate(
            args.source,
            args.target,
            target_size=args.target_size,
            target_format=args.format,
            platform=args.platform,
            disk_name=args.disk_name or None,
            registry=RegistryOptions(
                docker_config=args.pull_secret,
                ca_file=args.ca_file,
                plain_http=args.plain_http,
                tls_verify=not args.insecure_skip_tls_verify,
            ),
            scratch_dir=args.scratch_dir,
            progress=progress,
        )
    except VMDiskImageError as exc:
        log.error("%s: %s", exc.reason, exc.message)
        write_termination_message(args.termination_log, {"result": "Failed", **exc.to_dict()})
        return 1
    except Exception as exc:
        log.exception("unexpected failure")
        write_termination_message(
            args.termination_log,
            {
                "result": "Failed",
                "reason": "InternalError",
                "message": redact(f"{type(exc).__name__}: {exc}"),
            },
        )
        return 1
    progress.set_phase("Succeeded")
    write_termination_message(args.termination_log, result.to_message())
    log.info("imported %s into %s in %.1f s", result.digest, result.target, result.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
