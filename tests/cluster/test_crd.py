"""The VMDiskImage CRD as a real API server sees it: accepted, defaulted, validated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.kube import REPO, Cluster

pytestmark = pytest.mark.cluster

SAMPLES = sorted((REPO / "config" / "samples").glob("vm_*.yaml"))


def _image(**spec: Any) -> dict[str, Any]:
    base = {
        "sourceImage": "quay.io/containerdisks/fedora:41",
        "targetPVC": {"name": "fedora-root"},
        "targetSize": "20Gi",
    }
    return {
        "apiVersion": "vm.example.com/v1alpha1",
        "kind": "VMDiskImage",
        "metadata": {"name": "fedora"},
        "spec": {**base, **spec},
    }


def _dry_run(cluster: Cluster, namespace: str, obj: dict[str, Any], check: bool = True) -> str:
    return cluster.kubectl(
        "-n", namespace, "create", "--dry-run=server", "-o", "json", "-f", "-",
        stdin=json.dumps(obj),
        check=check,
    )  # fmt: skip


def test_crd_is_established_with_short_name(cluster: Cluster, crd: None):
    resources = cluster.kubectl("api-resources", "--api-group=vm.example.com", "-o", "name")
    assert resources.split() == ["vmdiskimages.vm.example.com"]
    # The short name resolves: `kubectl get vdi` is the documented way to look.
    cluster.kubectl("get", "vdi", "--all-namespaces")


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_samples_are_accepted(cluster: Cluster, crd: None, namespace: str, sample: Path):
    for doc in yaml.safe_load_all(sample.read_text()):
        if doc and doc["kind"] == "VMDiskImage":
            _dry_run(cluster, namespace, doc)


def test_server_fills_in_the_defaults(cluster: Cluster, crd: None, namespace: str):
    spec = json.loads(_dry_run(cluster, namespace, _image()))["spec"]
    assert spec["pullPolicy"] == "IfNotPresent"
    assert spec["format"] == "raw"
    assert spec["platform"] == "linux/amd64"
    assert spec["insecureRegistry"] is False
    assert spec["targetPVC"]["createIfNotExist"] is False


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ({"sourceImage": None}, "spec.sourceImage: Required value"),
        ({"targetSize": "abc"}, "spec.targetSize: Invalid value"),
        ({"format": "iso"}, 'spec.format: Unsupported value: "iso"'),
        ({"pullPolicy": "Sometimes"}, 'spec.pullPolicy: Unsupported value: "Sometimes"'),
        ({"sourceImage": "https://quay.io/fedora:41"}, "spec.sourceImage: Invalid value"),
        ({"diskName": "root disk"}, "spec.diskName: Invalid value"),
    ],
    ids=[
        "missing-sourceImage",
        "targetSize-abc",
        "format-iso",
        "pullPolicy-Sometimes",
        "url",
        "diskName-space",
    ],
)
def test_server_rejects_bad_objects(
    cluster: Cluster, crd: None, namespace: str, spec: dict[str, Any], complaint: str
):
    obj = _image(**spec)
    obj["spec"] = {k: v for k, v in obj["spec"].items() if v is not None}
    with pytest.raises(AssertionError, match=complaint):
        _dry_run(cluster, namespace, obj)


def test_printer_columns_and_status_subresource(cluster: Cluster, crd: None, namespace: str):
    cluster.apply(namespace, _image())
    status = {"status": {"phase": "Copying", "progress": "42.0%", "digest": "sha256:" + "a" * 64}}
    cluster.kubectl(
        "-n", namespace, "patch", "vdi", "fedora", "--subresource=status", "--type=merge",
        "-p", json.dumps(status),
    )  # fmt: skip
    table = cluster.kubectl("-n", namespace, "get", "vdi", "-o", "wide").splitlines()
    assert table[0].split() == ["NAME", "PHASE", "PROGRESS", "SIZE", "DIGEST", "AGE"]
    assert table[1].split()[:5] == ["fedora", "Copying", "42.0%", "20Gi", "sha256:" + "a" * 64]
    # A write to the main resource cannot touch status: the subresource owns it.
    cluster.kubectl(
        "-n", namespace, "patch", "vdi", "fedora", "--type=merge",
        "-p", json.dumps({"status": {"phase": "Ready"}}),
    )  # fmt: skip
    assert cluster.get(namespace, "vdi", "fedora")["status"]["phase"] == "Copying"
