"""Memory stays bounded whatever the image or the registry sends: the import runs as the
pod runs it, in its own process, and its peak RSS is measured."""

from __future__ import annotations

import gzip
import subprocess

import pytest

from tests.support.hostile import (
    END_OF_ARCHIVE,
    HostileRegistry,
    pax_header,
    tar_entry,
    xz_with_dictionary,
    zeros_stream_gzip,
)
from tests.support.images import MiB, push_crafted
from tests.support.measure import run_populate
from vmdiskimage import oci

pytestmark = pytest.mark.registry

#: The data path holds about 51 MiB of buffers; the interpreter and its imports ~35 MiB.
PEAK_RSS_LIMIT = 200 * MiB
TAR_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"


def _push(registry, repo_tag: str, layer: bytes, media_type: str) -> str:
    repo, tag = repo_tag.split(":")
    with registry.client() as client:
        push_crafted(client, repo, tag, [(layer, media_type, None)])
    return f"{registry.url}/{repo_tag}"


def test_xz_with_a_huge_dictionary(plain_registry, tmp_path):
    """300 MiB of zeros whose xz header asks for a 1.5 GiB dictionary (43 KiB of blob).

    Before the fix the decoder grew its dictionary with the data: 350 MiB peak here,
    1.1 GB for a 164 KiB blob of a GiB of zeros.
    """
    blob = xz_with_dictionary(bytes(300 * MiB), dict_size_code=38)
    assert len(blob) < MiB
    ref = _push(plain_registry, "mem/xz:1", blob, oci.disk_media_type("raw", "xz"))
    run = run_populate(
        [f"--source={ref}", f"--target={tmp_path / 'out.img'}", "--plain-http"], tmp_path / "run"
    )
    assert run.peak_rss < PEAK_RSS_LIMIT, f"peak RSS {run.peak_rss >> 20} MiB"
    assert run.returncode == 1, run.stderr
    assert run.message["reason"] == "UnsupportedCompression", run.message


def test_xz_9_still_imports_within_the_bound(plain_registry, disks, tmp_path):
    """``xz -9`` (a 64 MiB dictionary) is the most a real image asks for."""
    blob = subprocess.run(
        ["xz", "-9", "-c", str(disks["raw"])], capture_output=True, check=True
    ).stdout
    ref = _push(plain_registry, "mem/xz9:1", blob, oci.disk_media_type("raw", "xz"))
    target = tmp_path / "out.img"
    run = run_populate([f"--source={ref}", f"--target={target}", "--plain-http"], tmp_path / "r")
    assert run.returncode == 0, run.stderr
    assert run.peak_rss < PEAK_RSS_LIMIT, f"peak RSS {run.peak_rss >> 20} MiB"
    assert target.read_bytes() == disks["raw"].read_bytes()


def test_pax_headers_held_at_once(plain_registry, tmp_path):
    """120 pax headers of 1 MiB each before the disk entry, gzipped to 400 KiB.

    Before the fix every one was held until the entry came: 277 MiB peak.
    """
    # Not UTF-8: each value decodes to a string of twice its size.
    headers = b"".join(pax_header({f"comment{i}": b"\xff" * (MiB - 64)}) for i in range(120))
    layer = gzip.compress(headers + tar_entry("disk/disk.img", bytes(4096)) + END_OF_ARCHIVE)
    assert len(layer) < MiB
    ref = _push(plain_registry, "mem/pax:1", layer, TAR_GZ)
    run = run_populate(
        [f"--source={ref}", f"--target={tmp_path / 'out.img'}", "--plain-http"], tmp_path / "run"
    )
    assert run.peak_rss < PEAK_RSS_LIMIT, f"peak RSS {run.peak_rss >> 20} MiB"
    assert run.returncode == 1, run.stderr
    assert run.message["reason"] == "ImageLimitExceeded", run.message


def test_gzip_bomb_token_response(plain_registry, tmp_path):
    """A token server answering 300 MiB of JSON in 300 KiB of gzip."""
    bomb = zeros_stream_gzip(300 * MiB, prefix=b'{"token":"', suffix=b'"}')
    assert len(bomb) < MiB
    with HostileRegistry(plain_registry.url) as liar:
        challenge = f'Bearer realm="http://{liar.url}/token",service="liar"'

        def manifest(handler):
            if "Authorization" in handler.headers:
                return None  # forwarded to the real registry
            return (401, {"WWW-Authenticate": challenge}, b"{}")

        liar.answers["/v2/mem/token/manifests/1"] = manifest
        liar.answers["/token"] = (
            200,
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
            bomb,
        )
        run = run_populate(
            [
                f"--source={liar.url}/mem/token:1",
                f"--target={tmp_path / 'out.img'}",
                "--plain-http",
            ],
            tmp_path / "run",
        )
    assert run.peak_rss < PEAK_RSS_LIMIT, f"peak RSS {run.peak_rss >> 20} MiB"
    assert run.returncode == 1, run.stderr
    assert run.message["reason"] == "RegistryError", run.message
