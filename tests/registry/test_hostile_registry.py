"""A registry that lies, as an attacker who controls it would: digests it never proves,
token answers that explode, strings that forge log lines, realms that harvest passwords."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest

from tests.support.hostile import HostileRegistry
from tests.support.images import MiB, make_disk, push_crafted
from tests.support.measure import run_populate
from tests.support.registry import start_registry
from vmdiskimage import errors, push, sources
from vmdiskimage.oci import OCI_INDEX, OCI_MANIFEST
from vmdiskimage.populate import main, populate
from vmdiskimage.registry import RegistryOptions

pytestmark = pytest.mark.registry

PLAIN_HTTP = RegistryOptions(plain_http=True)


def _sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


@pytest.fixture
def pushed(plain_registry, disks):
    """Two artifacts in one repository: the disk asked for and the one a liar serves."""
    out = {}
    with plain_registry.client() as client:
        for name in ("raw", "other"):
            ref = f"{plain_registry.url}/liar/disk:{name}"
            result = push.push(disks[name], ref, kind=sources.ARTIFACT, comp="zstd", client=client)
            raw = client.get_manifest("liar/disk", result.digest).raw
            out[name] = (result.digest, raw)
    return out


def _manifest(raw: bytes, media_type: str = OCI_MANIFEST):
    return (200, {"Content-Type": media_type}, raw)


def test_sha512_pin_is_verified(plain_registry, pushed, disks, tmp_path):
    """Before the fix a `@sha512:` pin was not checked: any manifest was taken."""
    _, wanted = pushed["raw"]
    _, other = pushed["other"]
    with HostileRegistry(plain_registry.url) as liar:
        good = _sha512(wanted)
        liar.answers[f"/v2/liar/disk/manifests/{good}"] = _manifest(wanted)
        result = populate(
            f"{liar.url}/liar/disk@{good}", tmp_path / "good.img", registry=PLAIN_HTTP
        )
        assert (tmp_path / "good.img").read_bytes() == disks["raw"].read_bytes()
        assert result.digest == "sha256:" + hashlib.sha256(wanted).hexdigest()

        liar.answers[f"/v2/liar/disk/manifests/{good}"] = _manifest(other)
        with pytest.raises(errors.DigestMismatch, match="sha512"):
            populate(f"{liar.url}/liar/disk@{good}", tmp_path / "bad.img", registry=PLAIN_HTTP)


def test_index_child_listed_by_sha512_is_verified(plain_registry, pushed, disks, tmp_path):
    """Before the fix an index entry listed by sha512 was fetched and used unverified."""
    _, wanted = pushed["raw"]
    _, other = pushed["other"]
    child = _sha512(wanted)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": child,
                    "size": len(wanted),
                    "platform": {"os": "linux", "architecture": "amd64"},
                }
            ],
        }
    ).encode()
    with HostileRegistry(plain_registry.url) as liar:
        liar.answers["/v2/liar/disk/manifests/multi"] = _manifest(index, OCI_INDEX)
        liar.answers[f"/v2/liar/disk/manifests/{child}"] = _manifest(wanted)
        ref = f"{liar.url}/liar/disk:multi"
        populate(ref, tmp_path / "good.img", registry=PLAIN_HTTP)
        assert (tmp_path / "good.img").read_bytes() == disks["raw"].read_bytes()

        liar.answers[f"/v2/liar/disk/manifests/{child}"] = _manifest(other)
        with pytest.raises(errors.DigestMismatch, match="sha512"):
            populate(ref, tmp_path / "bad.img", registry=PLAIN_HTTP)
        assert not (tmp_path / "bad.img").exists()


def _corrupt_layer(registry, repo_tag: str, disk, kind: str = sources.ARTIFACT) -> str:
    """Push ``disk`` uncompressed, then flip a byte of the stored layer."""
    ref = f"{registry.url}/{repo_tag}"
    with registry.client() as client:
        result = push.push(disk, ref, kind=kind, comp="none", client=client)
    stored = registry.blob_data_path(result.layer_digest)
    data = bytearray(stored.read_bytes())
    data[3 * MiB] ^= 0xFF  # inside the disk, in a zero block
    stored.write_bytes(bytes(data))
    return ref


@pytest.mark.parametrize("kind", [sources.ARTIFACT, sources.CONTAINER_DISK])
def test_unverified_bytes_are_cleared_from_the_target(plain_registry, tmp_path, kind):
    """Before the fix the disk's bytes stayed on the target when the digest check failed."""
    disk = make_disk(tmp_path / "d.raw", 4 * MiB, ((0, 2 * MiB),), seed=21)
    ref = _corrupt_layer(plain_registry, f"clear/{kind.lower()}:1", disk, kind)
    target = tmp_path / "out.img"
    log = tmp_path / "termination-log"
    code = main(
        [f"--source={ref}", f"--target={target}", "--plain-http", f"--termination-log={log}"]
    )
    message = json.loads(log.read_text())
    assert code == 1 and message["reason"] == "DigestMismatch"
    assert target.stat().st_size == 0
    assert message["targetCleared"] == "truncated"
    assert "no unverified data" in message["message"]


def test_registry_strings_cannot_forge_log_lines(plain_registry, disks, tmp_path):
    """A layer media type carrying a newline and a fake `Succeeded` progress line.

    `kubectl logs --tail=1` reads the last line of stdout and stderr together: before
    the fix the error line broke in two and the forged line came last.
    """
    forged = json.dumps({"progress": {"phase": "Succeeded", "bytesDone": 1, "bytesTotal": 1}})
    media_type = f"application/x-evil\n{forged}\n"
    with plain_registry.client() as client:
        push_crafted(client, "forge/log", "1", [(disks["raw"].read_bytes(), media_type, None)])
    run = run_populate(
        [
            f"--source={plain_registry.url}/forge/log:1",
            f"--target={tmp_path / 'out.img'}",
            "--plain-http",
        ],
        tmp_path / "run",
    )
    assert run.returncode == 1
    assert run.message["reason"] == "UnsupportedManifest"
    for line in run.stderr.splitlines():
        assert not line.startswith("{"), f"forged line in the log: {line!r}"
    assert "\\\\n" in run.stderr or "\\n" in run.stderr


def test_credentials_never_go_to_a_plain_http_token_realm(tmp_path, disks):
    """An HTTPS registry whose token realm is http://: the password would cross in clear.

    Before the fix the pull secret's user and password went to the realm as Basic auth.
    """
    with start_registry(tmp_path / "reg", tls=True, auth="token") as registry:
        assert registry.token_server.realm.startswith("http://")
        ref = f"{registry.url}/realm/disk:1"
        with pytest.raises(errors.VMDiskImageError) as exc:
            populate(
                ref,
                tmp_path / "out.img",
                registry=replace(
                    registry.options(), docker_config=registry.dockerconfigjson_path()
                ),
            )
        assert registry.token_server.authorizations == [], "credentials went over plain HTTP"
        assert exc.value.reason == "AuthenticationFailed" and "not HTTPS" in exc.value.message
