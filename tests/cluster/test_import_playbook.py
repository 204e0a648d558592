"""playbooks/import.yml: the operator's own roles run by hand with ansible-playbook, no
operator running, fill a VMDiskImage's target PVC on the local node."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.kube import Cluster, run_pod
from tests.cluster.operator import MIB, leftovers, status, vmdiskimage
from tests.module_harness import run_playbook
from tests.support.images import make_disk
from tests.support.registry import Registry, start_registry
from vmdiskimage import push

pytestmark = pytest.mark.cluster

DISK_SIZE = 8 * MIB
TARGET_SIZE = 64 * MIB


@pytest.fixture(scope="module")
def registry(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with start_registry(tmp_path_factory.mktemp("by-hand-registry"), host=cluster.bridge_ip) as r:
        yield r


def test_import_playbook_fills_the_target_pvc_without_an_operator(
    cluster: Cluster, crd: None, namespace: str, registry: Registry, tmp_path: Path
) -> None:
    disk = make_disk(tmp_path / "disk.raw", DISK_SIZE, ((0, MIB), (5 * MIB, MIB)), seed=11)
    source = f"{registry.url}/disks/by-hand:1"
    with registry.client() as client:
        push.push(disk, source, kind=push.CONTAINER_DISK, comp="gzip", client=client)
    cluster.apply(namespace, vmdiskimage("manual", source, "manual-root", targetPVC={
        "name": "manual-root", "createIfNotExist": True}))  # fmt: skip

    rc, _, output = run_playbook(
        "import.yml",
        {"vdi_namespace": namespace, "vdi": "manual"},
        env={"K8S_AUTH_KUBECONFIG": cluster.kubeconfig, "ANSIBLE_STDOUT_CALLBACK": "default"},
        timeout=600,
    )

    assert rc == 0, output[-6000:]
    assert "holds the disk of VMDiskImage" in output
    final = status(cluster, namespace, "manual")
    assert final["phase"] == "Ready", final
    expected = hashlib.sha256(disk.read_bytes() + bytes(TARGET_SIZE - DISK_SIZE)).hexdigest()
    logs = run_pod(cluster, namespace, "verify", "sha256sum < /data/disk.img", pvc="manual-root")
    assert expected in logs
    assert leftovers(cluster, namespace) == []


def test_import_playbook_stops_with_the_failure_of_the_vmdiskimage(
    cluster: Cluster, crd: None, namespace: str, registry: Registry
) -> None:
    cluster.apply(namespace, vmdiskimage("nothing", f"{registry.url}/disks/none:1", "x"))

    rc, _, output = run_playbook(
        "import.yml",
        {"vdi_namespace": namespace, "vdi": "nothing"},
        env={"K8S_AUTH_KUBECONFIG": cluster.kubeconfig, "ANSIBLE_STDOUT_CALLBACK": "default"},
        timeout=300,
    )

    assert rc != 0
    assert "ImageNotFound" in output, output[-4000:]
    assert status(cluster, namespace, "nothing")["phase"] == "Failed"
