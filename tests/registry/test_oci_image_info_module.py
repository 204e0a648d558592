"""oci_image_info against real registries on loopback: the module run as Ansible runs it."""

from __future__ import annotations

import json

import pytest

from tests.module_harness import run_module, run_playbook, task_results
from tests.support.images import Layout, compress_file, kubevirt_vm_export, skopeo_copy
from vmdiskimage import push, sources
from vmdiskimage.oci import OCI_INDEX

pytestmark = pytest.mark.registry


def _args(registry, image, **extra):
    args = {"image": f"{registry.url}/{image}", "timeout": 20}
    if registry.tls:
        args["ca_file"] = str(registry.ca_file)
    else:
        args["plain_http"] = True
    return dict(args, **extra)


def _ok(result):
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is False
    return result


@pytest.fixture(scope="module")
def pushed(plain_registry, disks, tmp_path_factory):
    """Images on the plain registry: containerDisks, artifacts and a two-platform index."""
    work = tmp_path_factory.mktemp("info")
    reg = plain_registry
    out = {}
    with reg.client() as client:
        for fmt in ("raw", "qcow2"):
            out["cd", fmt] = push.push(
                disks[fmt], f"{reg.url}/info/cd:{fmt}", kind=sources.CONTAINER_DISK, client=client
            )
            out["art", fmt] = push.push(
                disks[fmt], f"{reg.url}/info/art:{fmt}", kind=sources.ARTIFACT, client=client
            )
        # A gzip raw artifact with KubeVirt's media type and no size annotations.
        layout = Layout(work / "kv")
        blob = compress_file(disks["raw"], work / "raw.gz", "gzip")
        layer = layout.blob_file(blob, "application/vnd.kubevirt.disk.raw+gzip")
        layout.tag(layout.manifest([layer]), "t")
        skopeo_copy(f"oci:{layout.path}:t", reg, "info/kubevirt:raw-gzip")
        # An index: amd64 -> the qcow2 containerDisk, arm64 -> the other disk.
        other = push.push(
            disks["other"], f"{reg.url}/info/multi:arm64", kind=sources.ARTIFACT, client=client
        )
        amd = push.push(
            disks["qcow2"],
            f"{reg.url}/info/multi:amd64",
            kind=sources.CONTAINER_DISK,
            client=client,
        )
        entries = []
        for result, arch in ((amd, "amd64"), (other, "arm64")):
            manifest = client.get_manifest("info/multi", result.digest)
            entries.append(
                {
                    "mediaType": manifest.media_type,
                    "digest": manifest.digest,
                    "size": len(manifest.raw),
                    "platform": {"os": "linux", "architecture": arch},
                }
            )
        doc = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
        out["index"] = client.put_manifest("info/multi", "latest", doc.encode(), OCI_INDEX)
        out["index_amd64"], out["index_arm64"] = amd, other
    return out


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_container_disk(plain_registry, pushed, disks, fmt):
    result = _ok(run_module("oci_image_info", _args(plain_registry, f"info/cd:{fmt}")))
    pushed_image = pushed["cd", fmt]
    assert result["kind"] == "containerDisk"
    assert result["digest"] == pushed_image.digest
    assert result["reference"].endswith(f"@{pushed_image.digest}")
    assert result["layer"]["digest"] == pushed_image.layer_digest
    assert result["layer"]["size"] == pushed_image.layer_size
    assert result["layer"]["media_type"].startswith("application/vnd.oci.image.layer.v1.tar")
    assert result["format"] == fmt
    assert result["virtual_size"] == disks["raw"].stat().st_size
    assert result["disk_size"] == disks[fmt].stat().st_size
    assert result["disk_path"].startswith("disk/")
    assert result["platforms"] == []
    assert "tar header" in result["learned_from"]["disk_size"]
    expected = "qcow2 header" if fmt == "qcow2" else "tar header"
    assert expected in result["learned_from"]["virtual_size"]


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_artifact(plain_registry, pushed, disks, fmt):
    result = _ok(run_module("oci_image_info", _args(plain_registry, f"info/art:{fmt}")))
    assert result["kind"] == "artifact"
    assert result["digest"] == pushed["art", fmt].digest
    assert result["format"] == fmt
    assert result["compression"] == "zstd"
    assert result["virtual_size"] == disks["raw"].stat().st_size
    assert result["layer"]["annotations"]


def test_compressed_raw_artifact_without_annotations_has_no_virtual_size(plain_registry):
    result = _ok(run_module("oci_image_info", _args(plain_registry, "info/kubevirt:raw-gzip")))
    assert (result["kind"], result["format"], result["compression"]) == ("artifact", "raw", "gzip")
    assert result["virtual_size"] is None
    assert "unknown" in result["learned_from"]["virtual_size"]


def test_digest_reference_is_resolved_and_verified(plain_registry, pushed):
    digest = pushed["art", "qcow2"].digest
    result = _ok(run_module("oci_image_info", _args(plain_registry, f"info/art@{digest}")))
    assert result["digest"] == digest


@pytest.mark.parametrize(
    ("platform", "kind"), [("linux/amd64", "containerDisk"), ("linux/arm64", "artifact")]
)
def test_index_picks_the_platform_and_lists_them(plain_registry, pushed, platform, kind):
    args = _args(plain_registry, "info/multi:latest", platform=platform)
    result = _ok(run_module("oci_image_info", args))
    arch = platform.split("/")[1]
    assert result["index_digest"] == pushed["index"]
    assert result["digest"] == pushed[f"index_{arch}"].digest
    assert result["kind"] == kind
    assert result["platform"] == platform
    assert result["platforms"] == ["linux/amd64", "linux/arm64"]


def test_missing_platform_names_the_ones_there(plain_registry, pushed):
    args = _args(plain_registry, "info/multi:latest", platform="linux/s390x")
    result = run_module("oci_image_info", args)
    assert result["failed"] is True
    assert result["reason"] == "PlatformNotFound"
    assert "linux/arm64" in result["msg"]


def test_missing_tag(plain_registry, pushed):
    result = run_module("oci_image_info", _args(plain_registry, "info/cd:nope"))
    assert result["failed"] is True
    assert result["reason"] == "ImageNotFound"
    assert "info/cd:nope" in result["msg"]


@pytest.fixture(scope="module")
def on_basic(basic_registry, disks):
    with basic_registry.client() as client:
        push.push(disks["raw"], f"{basic_registry.url}/priv/cd:raw", client=client)


@pytest.fixture(scope="module")
def on_token(token_registry, disks):
    with token_registry.client() as client:
        push.push(disks["qcow2"], f"{token_registry.url}/priv/cd:qcow2", client=client)


def test_basic_auth_over_tls_with_a_private_ca(basic_registry, on_basic):
    args = _args(
        basic_registry, "priv/cd:raw", auth_file=str(basic_registry.dockerconfigjson_path())
    )
    result = _ok(run_module("oci_image_info", args))
    assert result["format"] == "raw"


def test_token_auth(token_registry, on_token):
    args = _args(
        token_registry, "priv/cd:qcow2", auth_file=str(token_registry.dockerconfigjson_path())
    )
    result = _ok(run_module("oci_image_info", args))
    assert result["format"] == "qcow2"


@pytest.mark.parametrize("registry_name", ["basic_registry", "token_registry"])
def test_without_credentials_auth_fails(request, registry_name, on_basic, on_token):
    registry = request.getfixturevalue(registry_name)
    image = "priv/cd:raw" if registry.auth == "basic" else "priv/cd:qcow2"
    result = run_module("oci_image_info", _args(registry, image))
    assert result["failed"] is True
    assert result["reason"] in ("AuthenticationFailed", "AccessDenied")


def test_wrong_password_fails(basic_registry, on_basic):
    auth = basic_registry.dockerconfigjson_path(password="wrong", name="wrong.json")
    result = run_module("oci_image_info", _args(basic_registry, "priv/cd:raw", auth_file=str(auth)))
    assert result["failed"] is True
    assert result["reason"] == "AuthenticationFailed"


def test_tls_without_the_ca_fails_and_validate_certs_false_opts_out(basic_registry, on_basic):
    auth = str(basic_registry.dockerconfigjson_path())
    args = {"image": f"{basic_registry.url}/priv/cd:raw", "auth_file": auth, "timeout": 20}
    result = run_module("oci_image_info", args)
    assert result["failed"] is True
    assert result["reason"] == "TLSVerificationFailed"
    _ok(run_module("oci_image_info", dict(args, validate_certs=False)))


def test_inspect_playbook_prints_what_the_image_holds(plain_registry, pushed):
    image = f"{plain_registry.url}/info/multi:latest"
    rc, report, output = run_playbook(
        "inspect.yml", {"image": image, "platform": "linux/arm64", "plain_http": True}
    )
    assert rc == 0, output
    info, shown = task_results(report)
    assert info["kind"] == "artifact"
    assert shown["__image"]["platforms"] == ["linux/amd64", "linux/arm64"]


@pytest.fixture(scope="module")
def vm_export(plain_registry, disks, tmp_path_factory):
    layout = tmp_path_factory.mktemp("info-export") / "layout"
    volumes = {"rootdisk": disks["raw"], "datadisk": disks["other"]}
    skopeo_copy(kubevirt_vm_export(layout, volumes), plain_registry, "info/export:1", "--all")
    return "info/export:1"


def test_vm_export_disk_by_name_sized_from_the_manifest(plain_registry, disks, vm_export):
    result = _ok(
        run_module("oci_image_info", _args(plain_registry, vm_export, disk_name="datadisk"))
    )
    assert (result["kind"], result["disk_name"]) == ("artifact", "datadisk")
    assert result["virtual_size"] == disks["other"].stat().st_size
    assert result["learned_from"]["virtual_size"] == "layer annotation io.kubevirt.disk.size"
    assert result["layer"]["annotations"]["io.kubevirt.disk.name"] == "datadisk"


@pytest.mark.parametrize(
    ("disk_name", "reason", "fragment"),
    [
        (None, "DiskNameRequired", "holds 2 disks, 'rootdisk' and 'datadisk'"),
        ("swap", "DiskNotFound", "no disk named 'swap'; its disks are 'rootdisk' and 'datadisk'"),
    ],
)
def test_vm_export_without_the_right_name_lists_its_disks(
    plain_registry, vm_export, disk_name, reason, fragment
):
    args = _args(plain_registry, vm_export, **({"disk_name": disk_name} if disk_name else {}))
    result = run_module("oci_image_info", args)
    assert result["failed"] is True
    assert result["reason"] == reason
    assert fragment in result["msg"]
    assert result["disk_names"] == ["rootdisk", "datadisk"]
