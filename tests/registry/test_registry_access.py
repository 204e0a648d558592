"""TLS, basic and token auth, index platform selection, Range resume and digest checks
against real docker-registry processes."""

from __future__ import annotations

import io
import json
import threading
import time
from dataclasses import replace

import pytest

from tests.support.images import Layout, MiB, make_disk, skopeo_copy
from tests.support.registry import start_registry
from vmdiskimage import errors, oci, push, sources
from vmdiskimage.populate import main, populate
from vmdiskimage.progress import Progress
from vmdiskimage.reference import ImageReference
from vmdiskimage.registry import RegistryClient, RegistryOptions

pytestmark = pytest.mark.registry

PLAIN_HTTP = RegistryOptions(plain_http=True)


def _push(registry, disk, repo, **kw):
    with registry.client() as client:
        return push.push(disk, f"{registry.url}/{repo}", client=client, **kw)


def test_tls_registry_with_private_ca(tls_registry, disks, tmp_path):
    ref = f"{tls_registry.url}/tls/disk:1"
    _push(tls_registry, disks["raw"], "tls/disk:1")
    result = populate(
        ref, tmp_path / "a.img", registry=RegistryOptions(ca_file=tls_registry.ca_file)
    )
    assert (tmp_path / "a.img").read_bytes() == disks["raw"].read_bytes()
    assert result.digest.startswith("sha256:")
    with pytest.raises(errors.TLSFailure, match="CA bundle"):
        populate(ref, tmp_path / "b.img")
    populate(ref, tmp_path / "c.img", registry=RegistryOptions(tls_verify=False))  # opt-in only
    with pytest.raises(errors.RegistryError):
        populate(ref, tmp_path / "d.img", registry=PLAIN_HTTP)  # HTTP to a TLS port


@pytest.mark.parametrize("registry_name", ["basic_registry", "token_registry"])
def test_auth_with_dockerconfigjson(request, registry_name, disks, tmp_path):
    registry = request.getfixturevalue(registry_name)
    _push(registry, disks["raw"], "auth/disk:1", kind=sources.CONTAINER_DISK, comp="gzip")
    ref = f"{registry.url}/auth/disk:1"
    options = registry.options()
    with_secret = replace(options, docker_config=registry.dockerconfigjson_path())
    result = populate(ref, tmp_path / "ok.img", registry=with_secret)
    assert (tmp_path / "ok.img").read_bytes() == disks["raw"].read_bytes()
    assert result.kind == sources.CONTAINER_DISK
    if registry.token_server:
        assert registry.token_server.issued >= 1
    wrong = registry.dockerconfigjson_path(password="wrong", name="wrong.json")
    with pytest.raises(errors.AuthenticationFailed) as exc:
        populate(ref, tmp_path / "wrong.img", registry=replace(options, docker_config=wrong))
    assert "tester" in exc.value.message or "credentials" in exc.value.message
    with pytest.raises(errors.AuthenticationFailed):
        populate(ref, tmp_path / "anon.img", registry=options)  # no credentials at all


def test_dockerconfigjson_as_people_write_it(basic_registry, disks, tmp_path):
    """An empty Docker Hub entry, a malformed key for another registry, a repository path."""
    _push(basic_registry, disks["raw"], "team/disk:1")
    good = basic_registry.dockerconfigjson()["auths"][basic_registry.url]
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "auths": {
            "https://index.docker.io/v1/": {},  # Docker Desktop, beside its credsStore
            "broken.example": {"auth": "bm8tY29sb24="},  # "no-colon": not for this image
            f"{basic_registry.url}/team": good,
            basic_registry.url: {"auth": "d3Jvbmc6d3Jvbmc="},  # wrong:wrong, less specific
        },
        "credsStore": "desktop",
    }))  # fmt: skip
    options = replace(basic_registry.options(), docker_config=config)
    populate(f"{basic_registry.url}/team/disk:1", tmp_path / "out.img", registry=options)
    assert (tmp_path / "out.img").read_bytes() == disks["raw"].read_bytes()
    _push(basic_registry, disks["raw"], "other/disk:1")
    with pytest.raises(errors.AuthenticationFailed):  # the registry-wide key is wrong
        populate(f"{basic_registry.url}/other/disk:1", tmp_path / "other.img", registry=options)


def test_insufficient_scope_is_not_found_or_not_authorized(token_registry, disks, tmp_path):
    """Docker Hub's answer for a repository that does not exist is not 'bad credentials'."""
    _push(token_registry, disks["raw"], "scope/disk:1")
    token_registry.token_server.anonymous = True
    try:
        with pytest.raises(errors.ImageNotFound, match=r"not found .*or not authorized") as exc:
            populate(
                f"{token_registry.url}/scope/missing:1", tmp_path / "anon.img",
                registry=token_registry.options(),
            )  # fmt: skip
    finally:
        token_registry.token_server.anonymous = False
    assert "insufficient_scope" in exc.value.message
    assert "credentials" not in exc.value.message.split("(")[0]


def test_wrong_credentials_reported_in_termination_message(basic_registry, disks, tmp_path):
    _push(basic_registry, disks["raw"], "auth/term:1")
    wrong = basic_registry.dockerconfigjson_path(password="nope", name="nope.json")
    log = tmp_path / "termination-log"
    code = main(
        [
            f"--source={basic_registry.url}/auth/term:1",
            f"--target={tmp_path / 'x.img'}",
            f"--pull-secret={wrong}",
            f"--ca-file={basic_registry.ca_file}",
            f"--termination-log={log}",
        ]
    )
    assert code == 1
    message = json.loads(log.read_text())
    assert message["result"] == "Failed" and message["reason"] == "AuthenticationFailed"


def test_index_platform_selection(plain_registry, disks, tmp_path):
    """An image index built by hand and copied with `skopeo copy --all`."""
    layout = Layout(tmp_path / "layout")
    entries = []
    for disk, arch in ((disks["raw"], "amd64"), (disks["other"], "arm64")):
        layer = layout.blob_file(disk, "application/vnd.kubevirt.disk.raw", annotations={"x": arch})
        manifest = layout.manifest([layer])
        entries.append({**manifest, "platform": {"os": "linux", "architecture": arch}})
    layout.tag(layout.image_index(entries), "multi")
    skopeo_copy(f"oci:{layout.path}:multi", plain_registry, "multi/disk:1", "--all")
    ref = f"{plain_registry.url}/multi/disk:1"
    amd = populate(ref, tmp_path / "amd.img", registry=PLAIN_HTTP)
    arm = populate(ref, tmp_path / "arm.img", registry=PLAIN_HTTP, platform="linux/arm64")
    assert (tmp_path / "amd.img").read_bytes() == disks["raw"].read_bytes()
    assert (tmp_path / "arm.img").read_bytes() == disks["other"].read_bytes()
    assert amd.index_digest == arm.index_digest is not None
    assert amd.digest != arm.digest
    with pytest.raises(errors.PlatformNotFound, match="linux/amd64, linux/arm64"):
        populate(ref, tmp_path / "s390x.img", registry=PLAIN_HTTP, platform="linux/s390x")
    # Pinning by the index digest resolves the same way.
    pinned = f"{plain_registry.url}/multi/disk@{amd.index_digest}"
    assert populate(pinned, tmp_path / "pin.img", registry=PLAIN_HTTP).digest == amd.digest


def test_registry_killed_mid_blob_resumes_with_range(tmp_path):
    """Kill docker-registry while a 48 MiB blob streams; restart it; the read resumes."""
    disk = tmp_path / "noise.raw"
    disk.write_bytes(make_disk(tmp_path / "n", 48 * MiB, ((0, 48 * MiB),), seed=5).read_bytes())
    with start_registry(tmp_path / "reg") as registry:
        pushed = _push(registry, disk, "kill/disk:1", comp="none")
        client = RegistryClient(registry.url, PLAIN_HTTP, backoff=0.2, retries=8)
        reader = client.open_blob("kill/disk", pushed.layer_digest, pushed.layer_size)
        buf = bytearray(MiB)
        got = reader.readinto(buf)
        registry.kill()
        restarter = threading.Timer(0.5, registry.start)
        restarter.start()
        out = bytearray(buf[:got])
        while n := reader.readinto(buf):
            out += buf[:n]
        restarter.join()
        assert reader.resumes >= 1
        assert reader.verified
        assert bytes(out) == disk.read_bytes()
        client.close()


def test_registry_killed_during_populate(tmp_path):
    disk = make_disk(tmp_path / "d.raw", 64 * MiB, ((0, 40 * MiB),), seed=6)
    with start_registry(tmp_path / "reg") as registry:
        _push(registry, disk, "kill/pop:1", comp="none")
        client = RegistryClient(registry.url, PLAIN_HTTP, backoff=0.2, retries=8)
        killed = threading.Event()

        def kill_then_restart() -> None:
            registry.kill()
            killed.set()
            time.sleep(0.3)
            registry.start()

        class KillingProgress:
            total = None

            def set_phase(self, phase: str) -> None:
                pass

            def wait(self, message: str | None) -> None:
                pass

            def update(self, done: int, force: bool = False) -> None:
                if done >= 8 * MiB and not killed.is_set():
                    kill_then_restart()

        result = populate(
            f"{registry.url}/kill/pop:1", tmp_path / "out.img", client=client,
            progress=KillingProgress(),  # type: ignore[arg-type]
        )  # fmt: skip
        assert killed.is_set()
        assert result.resumes >= 1
        assert (tmp_path / "out.img").read_bytes() == disk.read_bytes()
        assert result.virtual_size == 64 * MiB
        client.close()


@pytest.mark.parametrize("kind", [sources.ARTIFACT, sources.CONTAINER_DISK])
def test_corrupted_blob_fails_with_clear_message(tmp_path, kind):
    disk = make_disk(tmp_path / "d.raw", 4 * MiB, ((0, 2 * MiB),), seed=9)
    with start_registry(tmp_path / "reg") as registry:
        pushed = _push(registry, disk, "bad/disk:1", kind=kind, comp="none")
        data = registry.blob_data_path(pushed.layer_digest)
        raw = bytearray(data.read_bytes())
        raw[3 * MiB] ^= 0xFF  # flip one bit in the layer's stored bytes
        data.write_bytes(bytes(raw))
        log = tmp_path / "termination-log"
        code = main(
            [
                f"--source={registry.url}/bad/disk:1",
                f"--target={tmp_path / 'out.img'}",
                "--plain-http",
                f"--termination-log={log}",
            ]
        )
        assert code == 1
        message = json.loads(log.read_text())
        assert message["reason"] == "DigestMismatch"
        assert pushed.layer_digest in message["message"] and "corrupt" in message["message"]
        assert message["result"] == "Failed"


def test_corrupted_manifest_is_refused(tmp_path, disks):
    with start_registry(tmp_path / "reg") as registry:
        pushed = _push(registry, disks["raw"], "pin/disk:1")
        with registry.client() as client:
            assert client.resolve(ImageReference.parse(pushed.reference)).digest == pushed.digest
            stored = registry.blob_data_path(pushed.digest)
            stored.write_bytes(stored.read_bytes().replace(b'"layers"', b'"layers" '))
            with pytest.raises(errors.DigestMismatch):
                client.get_manifest("pin/disk", pushed.digest)
            with pytest.raises(errors.DigestMismatch):
                client.get_manifest("pin/disk", "1")  # by tag: Docker-Content-Digest disagrees


def test_inspect_reads_only_the_head(plain_registry, tmp_path):
    disk = make_disk(tmp_path / "big.raw", 64 * MiB, ((0, 60 * MiB),), seed=3)
    pushed = _push(plain_registry, disk, "head/disk:1", comp="none")
    with plain_registry.client() as client:
        info = sources.inspect(client, f"{plain_registry.url}/head/disk:1")
    assert info.virtual_size == 64 * MiB and info.layer.digest == pushed.layer_digest
    assert info.annotations[oci.ANNOTATION_FORMAT] == "raw"


@pytest.mark.parametrize("status", [429, 503])
def test_busy_registry_is_waited_for_as_its_retry_after_says(
    plain_registry, disks, tmp_path, status
):
    """429/503 with Retry-After: populate waits that long each time, says so, completes."""
    from tests.support.faults import FaultyFront

    pushed = _push(plain_registry, disks["raw"], f"busy/disk:{status}")
    with FaultyFront(plain_registry.url, "127.0.0.1") as front:
        front.busy, front.busy_status, front.retry_after = 3, status, 1
        lines = io.StringIO()
        started = time.monotonic()
        result = populate(
            f"{front.url}/busy/disk:{status}", tmp_path / "out.img", registry=PLAIN_HTTP,
            progress=Progress(stream=lines, interval=3600),
        )  # fmt: skip
        took = time.monotonic() - started
    assert result.digest == pushed.digest
    assert (tmp_path / "out.img").read_bytes() == disks["raw"].read_bytes()
    assert front.busy == 0, "every busy answer was met"
    assert took >= 3.0, f"three 1 s waits were asked for; the import took {took:.2f} s"
    records = [json.loads(line)["progress"] for line in lines.getvalue().splitlines()]
    waits = [r["waiting"] for r in records if "waiting" in r]
    assert len(waits) == 3
    assert f"answered HTTP {status}" in waits[0] and "Retry-After" in waits[0]
    assert "waiting" not in records[-1], "the last progress line no longer waits"


def test_busy_registry_past_the_wait_budget_is_unavailable(plain_registry, disks, tmp_path):
    from tests.support.faults import FaultyFront

    _push(plain_registry, disks["raw"], "busy/disk:long")
    with FaultyFront(plain_registry.url, "127.0.0.1") as front:
        front.busy, front.retry_after = 100, 3600  # asks for an hour: the cap is 60 s
        client = RegistryClient(front.url, PLAIN_HTTP, max_wait=30)
        started = time.monotonic()
        with pytest.raises(
            errors.RegistryUnavailable, match=r"kept answering HTTP 429.*after 30 s"
        ):
            populate(f"{front.url}/busy/disk:long", tmp_path / "out.img", client=client)
        client.close()
    # The hour was cut to 60 s, past the 30 s budget: no sleep at all.
    assert time.monotonic() - started < 10
    assert not (tmp_path / "out.img").exists() or (tmp_path / "out.img").stat().st_size == 0


def _without_media_type(raw: bytes) -> bytes:
    doc = json.loads(raw)
    doc.pop("mediaType", None)
    return json.dumps(doc).encode()


def test_manifests_without_media_type_served_as_json(plain_registry, disks, tmp_path):
    """An index and manifests that name no mediaType, served as ``application/json`` (a
    static file server, an old proxy): told apart by their fields.

    Before the fix: UnsupportedManifest, "unsupported media type application/json".
    """
    from tests.support.hostile import HostileRegistry

    served = {}
    entries = []
    with plain_registry.client() as client:
        for name, arch in (("raw", "amd64"), ("other", "arm64")):
            pushed = _push(plain_registry, disks[name], f"json/disk:{name}")
            raw = _without_media_type(client.get_manifest("json/disk", pushed.digest).raw)
            digest = oci.content_digest(raw, "sha256")
            served[f"/v2/json/disk/manifests/{digest}"] = raw
            entries.append({"digest": digest, "size": len(raw),
                            "platform": {"os": "linux", "architecture": arch}})  # fmt: skip
    served["/v2/json/disk/manifests/multi"] = json.dumps(
        {"schemaVersion": 2, "manifests": entries}
    ).encode()
    with HostileRegistry(plain_registry.url) as front:
        for path, raw in served.items():
            front.answers[path] = (200, {"Content-Type": "application/json"}, raw)
        ref = f"{front.url}/json/disk:multi"
        result = populate(ref, tmp_path / "arm.img", registry=PLAIN_HTTP, platform="linux/arm64")
        assert (tmp_path / "arm.img").read_bytes() == disks["other"].read_bytes()
        assert result.digest == entries[1]["digest"]

        schema1 = {"schemaVersion": 1, "name": "json/disk", "tag": "old", "fsLayers": []}
        front.answers["/v2/json/disk/manifests/old"] = (
            200, {"Content-Type": "application/json"}, json.dumps(schema1).encode(),
        )  # fmt: skip
        with pytest.raises(errors.UnsupportedManifest, match="Docker schema 1"):
            populate(f"{front.url}/json/disk:old", tmp_path / "old.img", registry=PLAIN_HTTP)


def test_index_platforms_normalised_and_the_last_resort(plain_registry, disks, tmp_path):
    """``linux/arm64/v8`` is an entry's ``linux/arm64``, names match in any case, and an
    entry without a platform is taken only when none matches.

    Before the fix all three failed with PlatformNotFound.
    """
    layout = Layout(tmp_path / "layout")
    entries = []
    for disk, platform in ((disks["other"], None), (disks["raw"], ("linux", "arm64"))):
        layer = layout.blob_file(disk, "application/vnd.kubevirt.disk.raw")
        manifest = layout.manifest([layer])
        if platform:
            manifest["platform"] = {"os": platform[0], "architecture": platform[1]}
        entries.append(manifest)
    layout.tag(layout.image_index(entries), "multi")
    skopeo_copy(f"oci:{layout.path}:multi", plain_registry, "norm/disk:1", "--all")
    ref = f"{plain_registry.url}/norm/disk:1"

    for wanted in ("linux/arm64/v8", "Linux/ARM64", "linux/aarch64"):
        populate(ref, tmp_path / "arm.img", registry=PLAIN_HTTP, platform=wanted)
        assert (tmp_path / "arm.img").read_bytes() == disks["raw"].read_bytes(), wanted
    # No amd64 entry: the entry without a platform, though listed first, only now.
    result = populate(ref, tmp_path / "any.img", registry=PLAIN_HTTP)
    assert (tmp_path / "any.img").read_bytes() == disks["other"].read_bytes()
    assert result.digest == entries[0]["digest"]
