#!/usr/bin/env python3
"""Benchmark of the disk data path (issues 3 and 10): populate vs a CDI-style two-pass import.

Two sets of fixtures, cached in ~/.cache/vmdiskimage/bench and built once, pushed to a
fresh loopback docker-registry on each run:

* synthetic: a 2 GiB raw disk with 512 MiB of random data in two extents, as a
  containerDisk (one gzip tar layer) and as a zstd artifact, plus 8 GiB variants for
  memory;
* realistic (issue 10): a 3 GiB ext4 filesystem filled with about 1.1 GB of real files
  (the Python installation, /usr/share, /usr/lib), so it compresses like an OS image,
  published as raw, qcow2 and compressed-qcow2 containerDisks (one gzip layer holding
  ``disk/disk.img``, as kubevirt/containerdisks builds them).

Measured side by side, each ``--repeat`` times:

* populate: ``vmdiskimage-populate`` into a file (a separate process: time, peak RSS,
  and from its result the decoder that ran and the scratch bytes it used);
* two-pass: ``skopeo copy`` to a dir, ``tar -x`` (or ``zstd -d``), ``qemu-img convert -O raw``;
* floor: blob GET + decompress to nowhere, with the same decoders, in this process;
  ``+sha256`` (the realistic floor) adds the digest check; for compressed qcow2 the
  floor also counts inflating every compressed cluster with a process per core;
* allocated bytes of the result (st_blocks * 512) vs the data bytes;
* CPU-seconds of populate and of the floor, the registry's included: on N cores a run
  cannot take less than its CPU-seconds / N, which tells a slow pipeline from a
  saturated machine.

Run: ``.venv/bin/python bench/datapath.py`` (``--skip-8g``, ``--only realistic`` or
``--repeat 1`` for a quicker run).
"""

from __future__ import annotations

import argparse
import compileall
import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import resource
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The benchmark reuses the tests' registry harness: the repository root must be importable
# before the imports below, hence their E402.
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from tests.support.registry import start_registry  # noqa: E402
from vmdiskimage import compression, oci, push, qcow2, sources  # noqa: E402
from vmdiskimage.oci import OCI_MANIFEST  # noqa: E402
from vmdiskimage.registry import RegistryClient, RegistryOptions  # noqa: E402
from vmdiskimage.streams import drain  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
CACHE = Path(os.environ.get("VMDISKIMAGE_BENCH_CACHE", Path.home() / ".cache/vmdiskimage/bench"))
DATA_BYTES = 512 * MiB
POPULATE = str(Path(sys.executable).with_name("vmdiskimage-populate"))


def make_disk(path: Path, size: int) -> Path:
    """``size`` bytes, 512 MiB of random data in two 256 MiB extents, holes elsewhere."""
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.truncate(size)
        for offset in (256 * MiB, size // 2 + 256 * MiB):
            fh.seek(offset)
            for _ in range(256 // 4):
                fh.write(os.urandom(4 * MiB))
    tmp.rename(path)
    return path


def make_layer(disk: Path, kind: str, comp: str) -> dict:
    """Build (once) the layer blob and the metadata needed to push it."""
    meta_path = CACHE / f"{disk.stem}.{kind}.{comp}.json"
    if meta_path.exists():
        return json.loads(meta_path.read_text())
    blob = CACHE / f"{disk.stem}.{kind}.{comp}.blob"
    print(f"  building {blob.name} ...", flush=True)
    with open(blob, "wb") as out:
        if kind == sources.CONTAINER_DISK:
            # gzip -6, the default of docker, buildah and Go: level 1 (zlib-ng "quick")
            # codes random data with fixed Huffman tables, 10x slower to inflate.
            digest, size, diff_id = push.build_container_disk_layer(disk, out, comp, level=6)
        else:
            digest, size = push.build_artifact_layer(disk, out, comp)
            diff_id = None
    meta = {"blob": str(blob), "digest": digest, "size": size, "diff_id": diff_id,
            "kind": kind, "comp": comp, "disk_size": disk.stat().st_size}  # fmt: skip
    meta_path.write_text(json.dumps(meta))
    return meta


def push_layer(client: RegistryClient, repo: str, meta: dict) -> None:
    if meta["kind"] == sources.CONTAINER_DISK:
        rootfs = {"type": "layers", "diff_ids": [meta["diff_id"]]}
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "config": {}, "rootfs": rootfs}
        ).encode()
        config_type = oci.OCI_CONFIG
        layer_type = oci.OCI_TAR_LAYERS[meta["comp"]]
        annotations = None
    else:
        config, config_type = b"{}", "application/vnd.oci.empty.v1+json"
        layer_type = oci.disk_media_type("raw", meta["comp"])
        annotations = {oci.ANNOTATION_UNCOMPRESSED_SIZE: str(meta["disk_size"]),
                       oci.ANNOTATION_FORMAT: "raw"}  # fmt: skip
    import io

    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    client.upload_blob(repo, config_digest, len(config), lambda: io.BytesIO(config))
    # upload_blob opens the file itself and closes it.
    client.upload_blob(repo, meta["digest"], meta["size"], lambda: open(meta["blob"], "rb"))  # noqa: SIM115
    layer = {"mediaType": layer_type, "digest": meta["digest"], "size": meta["size"]}
    if annotations:
        layer["annotations"] = annotations
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": config_type, "digest": config_digest, "size": len(config)},
                "layers": [layer]}  # fmt: skip
    client.put_manifest(repo, "bench", json.dumps(manifest).encode(), OCI_MANIFEST)


def settle() -> None:
    """Flush dirty pages of earlier runs so they do not slow down the next one."""
    os.sync()
    time.sleep(0.5)


def process_cpu(pid: int) -> float:
    """CPU-seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_measured(cmd: list[str], work: Path) -> tuple[float, int, float]:
    """Run ``cmd`` under /usr/bin/time; return (seconds, peak RSS in bytes, CPU-seconds).

    Not ru_maxrss of our own child: Linux carries a forked child's high-water mark
    over exec, so a large parent would inflate it.
    """
    rss_file = work / "rss"
    settle()
    start = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M %U %S", "-o", str(rss_file), *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.decode()[-2000:]}")
    rss, user, system = rss_file.read_text().split()[-3:]
    return elapsed, int(rss) * 1024, float(user) + float(system)


def populate_run(url: str, repo: str, target: Path) -> tuple[float, int, float]:
    target.unlink(missing_ok=True)
    return run_measured(
        [POPULATE, f"--source={url}/{repo}:bench", f"--target={target}", "--plain-http",
         f"--termination-log={target}.result", "--progress-interval=60"],
        target.parent,
    )  # fmt: skip


def two_pass_run(url: str, repo: str, meta: dict, work: Path, target: Path) -> float:
    """What a CDI-style importer does: fetch to scratch, unpack, convert."""
    for p in (work / "dir", work / "x"):
        shutil.rmtree(p, ignore_errors=True)
    target.unlink(missing_ok=True)
    settle()
    start = time.perf_counter()
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false",
                    f"docker://{url}/{repo}:bench", f"dir:{work / 'dir'}"], check=True)  # fmt: skip
    blob = work / "dir" / meta["digest"].split(":")[1]
    (work / "x").mkdir()
    if meta["kind"] == sources.CONTAINER_DISK:
        subprocess.run(["tar", "-x", "-f", str(blob), "-C", str(work / "x")], check=True)
        disk = work / "x" / "disk" / "disk.img"
    else:
        disk = work / "x" / "disk.img"
        subprocess.run(["zstd", "-q", "-d", str(blob), "-o", str(disk)], check=True)
    fmt = meta.get("format", "raw")
    subprocess.run(["qemu-img", "convert", "-f", fmt, "-O", "raw", str(disk), str(target)],
                   check=True)  # fmt: skip
    elapsed = time.perf_counter() - start
    shutil.rmtree(work / "dir")
    shutil.rmtree(work / "x")
    return elapsed


def floor_run(url: str, repo: str, meta: dict, verify: bool = False) -> tuple[float, float]:
    """Blob GET + decompression to nowhere, with the decoders populate uses (no tar walk,
    no writes): the least any importer must do. ``verify`` adds the sha256 of the blob,
    hashed in its own thread behind a read-ahead thread, as populate does (hashing in
    line would add its whole 0.4 s and overstate the least a verifying importer needs).
    Returns (seconds, CPU-seconds of this process)."""
    settle()
    cpu = own_cpu()
    start = time.perf_counter()
    if verify:
        with RegistryClient(url, RegistryOptions(plain_http=True)) as client:
            blob = client.open_blob(repo, meta["digest"], meta["size"])
            ahead = blob.read_ahead()
            try:
                drain(compression.open_decompressed(ahead, meta["comp"]), chunk_size=4 * MiB)
                drain(ahead)  # raises unless the digest matched
                assert blob.verified
            finally:
                ahead.close()
        return time.perf_counter() - start, own_cpu() - cpu
    with requests.get(f"http://{url}/v2/{repo}/blobs/{meta['digest']}", stream=True) as resp:
        resp.raise_for_status()
        drain(compression.open_decompressed(resp.raw, meta["comp"]), chunk_size=4 * MiB)
    return time.perf_counter() - start, own_cpu() - cpu


def fmt_bytes(n: int) -> str:
    return f"{n / MiB:,.1f} MiB"


def allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


# -- the realistic disk (issue 10) -------------------------------------------------------

REALISTIC_SIZE = 3 * GiB
#: Bytes of real files put into its filesystem (issue 10 measured with 1.1 GB).
REALISTIC_DATA = 1_100_000_000
#: Where those files come from, in this order, until there are enough of them.
REALISTIC_ROOTS = (sys.base_prefix, "/usr/share", "/usr/lib")
#: The realistic containerDisks: label, fixture file, format, ``qemu-img convert`` options.
REALISTIC = (
    ("raw", "realistic-raw.img", "raw", None),
    ("qcow2, plain clusters", "realistic-qcow2.img", "qcow2", ["-O", "qcow2"]),
    ("qcow2, compressed clusters", "realistic-qcow2c.img", "qcow2", ["-c", "-O", "qcow2"]),
)
RAW, PLAIN, COMPRESSED = (label for label, *_ in REALISTIC)
#: Issue 10's populate figures for the realistic raw disk, before the streaming decoder:
#: "raw paths no slower than today".
TODAY_RAW = (2.6, 3.5)
#: Debian keeps it in /usr/sbin, outside a user's PATH.
MKE2FS = shutil.which("mke2fs") or "/usr/sbin/mke2fs"
#: What each realistic run records.
ROW_FIELDS = (
    "populate",
    "cpu",
    "rss",
    "scratch",
    "decoder",
    "fetch",
    "inflate",
    "floor",
    "two_pass",
)


def _stage_files(staging: Path, budget: int) -> int:
    """Copy regular files of :data:`REALISTIC_ROOTS` under ``staging`` until ``budget`` bytes."""
    total = 0
    for root in REALISTIC_ROOTS:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            dest_dir = staging / Path(dirpath).relative_to("/")
            dest_dir.mkdir(parents=True, exist_ok=True)
            for name in sorted(filenames):
                src, dest = Path(dirpath, name), dest_dir / name
                try:
                    st = src.lstat()
                    if not stat.S_ISREG(st.st_mode) or dest.exists():
                        continue
                    shutil.copy2(src, dest)
                except OSError:
                    continue  # unreadable or vanished: take the next one
                total += st.st_size
                if total >= budget:
                    return total
    return total


def make_realistic_disks() -> dict[str, Path]:
    """Build (once) the ext4 disk of real files as raw, qcow2 and compressed qcow2."""
    raw = CACHE / REALISTIC[0][1]
    if not raw.exists():
        print(f"  building {raw.name}: ext4 with {REALISTIC_DATA / 1e9:.1f} GB of files ...")
        staging = CACHE / "realistic-files.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        for stale in CACHE.glob("realistic-*"):  # made from an earlier raw disk
            stale.unlink()
        staging.mkdir()
        tmp = raw.with_suffix(".tmp")
        try:
            copied = _stage_files(staging, REALISTIC_DATA)
            with open(tmp, "wb") as fh:
                fh.truncate(REALISTIC_SIZE)
            # -d fills the filesystem from a directory: no mount, no root needed.
            subprocess.run(
                [MKE2FS, "-q", "-F", "-t", "ext4", "-d", str(staging), str(tmp)], check=True
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        tmp.rename(raw)
        print(f"  {copied / 1e9:.2f} GB of files in {raw.name}")
    disks = {RAW: raw}
    for label, name, _fmt, options in REALISTIC[1:]:
        path = CACHE / name
        if not path.exists():
            print(f"  building {name} ...", flush=True)
            tmp = path.with_suffix(".tmp")
            subprocess.run(
                ["qemu-img", "convert", "-q", "-f", "raw", *options, str(raw), str(tmp)], check=True
            )
            tmp.rename(path)
        disks[label] = path
    return disks


def compressed_entries(l2: bytes, cluster_bits: int) -> list[tuple[int, int]]:
    """(file offset, length) of each compressed cluster an L2 table maps.

    The layout of the qcow2 specification: the offset in the low ``62 - (cluster_bits - 8)``
    bits, the count of additional 512-byte sectors above it; the data ends at the end of
    its last sector.
    """
    shift = 62 - (cluster_bits - 8)
    sectors_mask = (1 << (cluster_bits - 8)) - 1
    offset_mask = (1 << shift) - 1
    found = []
    for entry in struct.unpack(f">{len(l2) // 8}Q", l2):
        if entry & qcow2.OFLAG_COMPRESSED:
            host = entry & offset_mask
            sectors = (entry >> shift & sectors_mask) + 1
            found.append((host, sectors * 512 - (host & 511)))
    return found


def compressed_clusters(path: Path) -> tuple[int, list[tuple[int, int]]]:
    """The cluster size and (file offset, length) of every compressed cluster of a qcow2."""
    with open(path, "rb") as fh:
        header = qcow2.parse_header(fh.read(64 * 1024))
        fh.seek(header.l1_offset)
        l1 = struct.unpack(f">{header.l1_needed}Q", fh.read(header.l1_needed * 8))
        clusters = []
        for entry in l1:
            if l2_offset := entry & qcow2.OFFSET_MASK:
                fh.seek(l2_offset)
                clusters += compressed_entries(fh.read(header.cluster_size), header.cluster_bits)
    return header.cluster_size, sorted(clusters)


def _inflate_span(path: str, cluster_size: int, clusters: list[tuple[int, int]]) -> int:
    """Inflate ``clusters`` (file order, one stretch of the file) as qemu wrote them."""
    start = clusters[0][0]
    data = memoryview(bytearray(clusters[-1][0] + clusters[-1][1] - start))
    with open(path, "rb") as fh:  # into a bytearray: populate's runs are writable too
        fh.seek(start)
        fh.readinto(data)
    out = memoryview(bytearray(cluster_size))
    for host, length in clusters:
        piece = data[host - start : host - start + length]
        # Raw deflate with a 4 KiB window, as qemu writes it, with populate's inflater.
        if compression.inflate_raw_into(piece, out, window_bits=12) != cluster_size:
            raise RuntimeError(f"the compressed cluster at {host} of {path} is short")
    return len(clusters)


def inflate_run(
    pool: concurrent.futures.Executor,
    workers: int,
    path: Path,
    clusters: list[tuple[int, int]],
    cluster_size: int,
) -> float:
    """Seconds to inflate every compressed cluster of ``path`` on ``workers`` processes.

    The compressed bytes come from the page cache (the file was read just before), as
    they would arrive from the gunzip stage.
    """
    step = -(-len(clusters) // (8 * workers))
    pieces = [clusters[i : i + step] for i in range(0, len(clusters), step)]
    settle()
    start = time.perf_counter()
    done = sum(
        pool.map(_inflate_span, [str(path)] * len(pieces), [cluster_size] * len(pieces), pieces)
    )
    elapsed = time.perf_counter() - start
    assert done == len(clusters)
    return elapsed


def span(values: list[float], unit: str = " s", digits: int = 2) -> str:
    """``min-max`` of ``values`` (one figure when they agree at that precision)."""
    low, high = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
    return f"{low}{unit}" if low == high else f"{low}-{high}{unit}"


def judge(rows: dict[str, dict]) -> list[tuple[str, str, bool]]:
    """Issue 10's targets: (target, what was measured, met), on the best run of each figure."""
    c, plain, raw = rows[COMPRESSED], rows[PLAIN], rows[RAW]
    pop, floor, two = min(c["populate"]), min(c["floor"]), min(c["two_pass"])
    rss, scratch = max(c["rss"]), max(c["scratch"])
    return [
        (
            "compressed qcow2: populate within 1.3x of its floor",
            f"{pop / floor:.2f}x ({pop:.2f} s / {floor:.2f} s)",
            pop <= 1.3 * floor,
        ),
        (
            "compressed qcow2: at least 4x faster than two-pass",
            f"{two / pop:.2f}x ({two:.2f} s / {pop:.2f} s)",
            two >= 4 * pop,
        ),
        ("compressed qcow2: zero scratch bytes", f"{scratch} bytes", scratch == 0),
        ("compressed qcow2: peak RSS at most 64 MiB", fmt_bytes(rss), rss <= 64 * MiB),
        (
            "plain qcow2: populate within 10% of raw",
            f"{min(plain['populate']) / min(raw['populate']):.2f}x "
            f"({min(plain['populate']):.2f} s / {min(raw['populate']):.2f} s)",
            min(plain["populate"]) <= 1.1 * min(raw["populate"]),
        ),
        (
            f"raw: populate no slower than today ({TODAY_RAW[0]}-{TODAY_RAW[1]} s, issue 10)",
            f"{min(raw['populate']):.2f} s",
            min(raw["populate"]) <= TODAY_RAW[1],
        ),
    ]


def realistic_section(
    client: RegistryClient,
    url: str,
    work: Path,
    pool: concurrent.futures.Executor,
    workers: int,
    repeat: int,
) -> bool:
    """Measure the realistic containerDisks; print the table and the targets."""
    disks = make_realistic_disks()
    fixtures = {}
    for label, name, fmt, _options in REALISTIC:
        meta = make_layer(disks[label], sources.CONTAINER_DISK, "gzip")
        meta["format"] = fmt
        fixtures[label] = meta
        push_layer(client, f"bench/realistic-{Path(name).stem}", meta)
    cluster_size, clusters = compressed_clusters(disks[COMPRESSED])
    source = disks[RAW]
    print()
    print(
        f"realistic disk: {REALISTIC_SIZE >> 30} GiB ext4, "
        f"{allocated(source) / 1e9:.2f} GB allocated; compressed qcow2: "
        f"{len(clusters)} compressed clusters of {cluster_size >> 10} KiB; "
        f"{repeat} runs each, {workers} inflate processes",
        flush=True,
    )
    rows: dict[str, dict] = {}
    target, two = work / "out.img", work / "two.img"
    for label, name, _fmt, _options in REALISTIC:
        repo, meta = f"bench/realistic-{Path(name).stem}", fixtures[label]
        row: dict[str, list] = {field: [] for field in ROW_FIELDS}
        for run in range(repeat):
            seconds, rss, cpu = populate_run(url, repo, target)
            result = json.loads(Path(f"{target}.result").read_text())
            assert result["result"] == "Succeeded", result
            if run == 0:
                same = subprocess.run(["cmp", "-s", str(target), str(source)])
                assert same.returncode == 0, f"populate's {label} disk differs from the source"
            target.unlink()
            row["populate"].append(seconds)
            row["cpu"].append(cpu)
            row["rss"].append(rss)
            row["scratch"].append(result.get("scratchBytes", 0))
            decoder = result.get("decoder", "stream")
            if result.get("scratchReason"):
                decoder += f" ({result['scratchReason']})"
            row["decoder"].append(decoder)
            fetch = floor_run(url, repo, meta, verify=True)[0]
            inflate = 0.0
            if label == COMPRESSED:
                inflate = inflate_run(pool, workers, disks[label], clusters, cluster_size)
            row["fetch"].append(fetch)
            row["inflate"].append(inflate)
            row["floor"].append(fetch + inflate)
            row["two_pass"].append(two_pass_run(url, repo, meta, work, two))
            two.unlink()
        rows[label] = row
        print(
            f"  {label}: populate {span(row['populate'])}, two-pass {span(row['two_pass'])}, "
            f"floor {span(row['floor'])}",
            flush=True,
        )
    print()
    print(
        "| source disk | layer | populate | two-pass | populate's advantage | floor "
        "| populate / floor | populate CPU | peak RSS | scratch bytes | path |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, row in rows.items():
        advantage = [t / p for t, p in zip(row["two_pass"], row["populate"], strict=True)]
        over_floor = [p / f for p, f in zip(row["populate"], row["floor"], strict=True)]
        floor = span(row["fetch"])
        if label == COMPRESSED:
            floor += f" + {span(row['inflate'])} inflate"
        paths = sorted(set(row["decoder"]))
        print(
            f"| {label} | {fmt_bytes(fixtures[label]['size'])} | {span(row['populate'])} "
            f"| {span(row['two_pass'])} | {span(advantage, 'x', 1)} | {floor} "
            f"| {span(over_floor, 'x')} | {span(row['cpu'])} "
            f"| {span([r / MiB for r in row['rss']], ' MiB', 1)} "
            f"| {span(row['scratch'], '', 0)} | {', '.join(paths)} |"
        )
    print()
    print("floor: blob GET + sha256 + gunzip to nowhere (in this process, the hash in its own")
    print(f"thread); compressed qcow2 adds inflating all its clusters on {workers} processes")
    print("(from the page cache). populate: a new process; its CPU-seconds (user + system) and")
    print("peak RSS from /usr/bin/time; scratch bytes and path (decoder) from its termination")
    cores = os.cpu_count()
    print(f"message. On {cores} cores a run takes at least its CPU-seconds / {cores}.")
    print()
    ok = True
    print(f"targets (issue 10), on the best of {repeat} runs of each figure:")
    for what, measured, met in judge(rows):
        print(f"  {what:<66}{measured:<32}{'met' if met else 'NOT MET'}")
        ok = ok and met
    return ok


def synthetic_section(
    client: RegistryClient, url: str, work: Path, registry_pid: int, skip_8g: bool, repeat: int
) -> bool:
    """Measure the synthetic fixtures (issue 3); print their table and targets."""
    disk2 = make_disk(CACHE / "disk-2g.raw", 2 * GiB)
    fixtures = {
        "gzip containerDisk 2 GiB": make_layer(disk2, sources.CONTAINER_DISK, "gzip"),
        "zstd artifact 2 GiB": make_layer(disk2, sources.ARTIFACT, "zstd"),
    }
    if not skip_8g:
        disk8 = make_disk(CACHE / "disk-8g.raw", 8 * GiB)
        fixtures["gzip containerDisk 8 GiB"] = make_layer(disk8, sources.CONTAINER_DISK, "gzip")
        fixtures["zstd artifact 8 GiB"] = make_layer(disk8, sources.ARTIFACT, "zstd")
    for i, meta in enumerate(fixtures.values()):
        push_layer(client, f"bench/img{i}", meta)
    print(
        f"gzip decoder: {compression.gzip_backend()}; qcow2 cluster inflater: "
        f"{compression.inflate_backend()}; registry {url} (loopback)"
    )
    print()
    ok = True
    header = f"{'image':<26}{'layer':>11}{'populate':>10}{'two-pass':>10}{'floor':>8}"
    header += f"{'+sha256':>8}"
    header += (
        f"{'2p/pop':>8}{'pop/floor':>10}{'peak RSS':>11}{'allocated':>12}{'alloc/data':>11}"
        f"{'pop cpu':>9}{'floor cpu':>10}"
    )
    print(header)
    print("-" * len(header))
    for i, (name, meta) in enumerate(fixtures.items()):
        repo = f"bench/img{i}"
        target = work / "out.img"
        big = meta["disk_size"] > 4 * GiB
        pops = []
        for _ in range(repeat):
            reg_cpu = process_cpu(registry_pid)
            t, r, cpu = populate_run(url, repo, target)
            pops.append((t, r, cpu + process_cpu(registry_pid) - reg_cpu))
        pop_t, _, pop_cpu = min(pops)
        rss = max(r for _, r, _ in pops)
        result = json.loads(Path(f"{target}.result").read_text())
        assert result["result"] == "Succeeded", result
        st = target.stat()
        alloc = st.st_blocks * 512
        assert st.st_size == meta["disk_size"]
        floors = []
        for _ in range(repeat):
            reg_cpu = process_cpu(registry_pid)
            t, cpu = floor_run(url, repo, meta)
            floors.append((t, cpu + process_cpu(registry_pid) - reg_cpu))
        floor_t, floor_cpu = min(floors)
        floor_v = min(floor_run(url, repo, meta, verify=True)[0] for _ in range(repeat))
        two = None
        if not big:
            two = min(two_pass_run(url, repo, meta, work, work / "two.img") for _ in range(repeat))
            same = subprocess.run(["cmp", "-s", str(target), str(work / "two.img")])
            assert same.returncode == 0, "populate and two-pass results differ"
            (work / "two.img").unlink()
        target.unlink()
        two_s = f"{two:>9.2f}s" if two else f"{'-':>10}"
        ratio_s = f"{two / pop_t:>7.2f}x" if two else f"{'-':>8}"
        print(
            f"{name:<26}{fmt_bytes(meta['size']):>11}{pop_t:>9.2f}s{two_s}{floor_t:>7.2f}s"
            f"{floor_v:>7.2f}s"
            f"{ratio_s}{pop_t / floor_t:>9.2f}x{fmt_bytes(rss):>11}"
            f"{fmt_bytes(alloc):>12}{alloc / DATA_BYTES:>10.3f}x"
            f"{pop_cpu:>8.2f}s{floor_cpu:>9.2f}s",
            flush=True,
        )
        checks = [rss <= 64 * MiB, alloc <= 1.05 * DATA_BYTES]
        if name == "gzip containerDisk 2 GiB":
            checks += [two is not None and two / pop_t >= 4, pop_t / floor_t <= 2]
        if name == "zstd artifact 2 GiB":
            checks += [pop_t / floor_t <= 1.5]
        ok = ok and all(checks)
    print()
    print("targets: gzip containerDisk two-pass/populate >= 4x and populate/floor <= 2x;")
    print("         zstd artifact populate/floor <= 1.5x; peak RSS <= 64 MiB; alloc/data <= 1.05x")
    print("floor: blob GET + decompress to nowhere, in this process (no interpreter start);")
    print("+sha256: the same plus the digest check populate must do, hashed in a thread as")
    print("         populate does; populate: a new process")
    print(f"cpu: CPU-seconds of the fastest run, registry included; >= cpu/{os.cpu_count()} s")
    print("synthetic targets met" if ok else "SOME SYNTHETIC TARGETS MISSED")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-8g", action="store_true", help="skip the 8 GiB memory runs")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement")
    parser.add_argument("--only", choices=("synthetic", "realistic"), help="run one set only")
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"fixtures in {CACHE}")
    # Without bytecode (a fresh checkout under PYTHONDONTWRITEBYTECODE=1, or an image
    # installed with pip --no-compile) every populate start compiles the package first,
    # ~25 ms that belong to packaging, not to the data path.
    compileall.compile_dir(ROOT / "vmdiskimage", quiet=1)
    workers = len(os.sched_getaffinity(0))
    # Forked now, before any thread of this process exists.
    pool = concurrent.futures.ProcessPoolExecutor(workers, multiprocessing.get_context("fork"))
    ok = True
    try:
        sum(pool.map(abs, range(workers)))  # the workers start here, not in a measurement
        with tempfile.TemporaryDirectory(prefix="vdi-bench-", dir=os.environ.get("TMPDIR")) as tmp:
            work = Path(tmp)
            with (
                start_registry(work / "registry") as registry,
                RegistryClient(registry.url, RegistryOptions(plain_http=True)) as client,
            ):
                pid = registry.process.pid
                if args.only != "realistic":
                    ok = synthetic_section(
                        client, registry.url, work, pid, args.skip_8g, args.repeat
                    )
                if args.only != "synthetic":
                    ok = (
                        realistic_section(client, registry.url, work, pool, workers, args.repeat)
                        and ok
                    )
    finally:
        pool.shutdown()
    print()
    # Figures, not a test: a missed target is reported above and here, and the run still
    # succeeds (the figures of a loaded or smaller machine are worth reading too).
    print("all targets met" if ok else "SOME TARGETS MISSED (see the verdicts above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
