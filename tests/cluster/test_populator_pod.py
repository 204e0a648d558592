"""The populator image as a real pod: registry on the bridge -> PVC, Filesystem and Block.

This is the pod the operator will create (design §5): `vmdiskimage-populate` from the
populator image, no service account token, non-root where the volume allows, a
read-only root filesystem, all capabilities dropped, the pull secret mounted as a file.
The result is read back by a second pod and compared with the disk that was pushed.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.kube import Cluster, pod_phase, pvc_manifest, run_pod
from tests.support.images import make_disk
from tests.support.registry import Registry, start_registry
from vmdiskimage import push

pytestmark = pytest.mark.cluster

POPULATOR_IMAGE = "localhost/vmdiskimage-populator:dev"
MiB = 1 << 20
DISK_SIZE = 24 * MiB
TARGET_SIZE = 40 * MiB
REPOSITORY = "disks/cirros"


@pytest.fixture(scope="module")
def registry(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A basic-auth registry on the bridge, holding one containerDisk (gzip layer)."""
    workdir = tmp_path_factory.mktemp("populator-registry")
    with start_registry(workdir, host=cluster.bridge_ip, auth="basic") as reg:
        yield reg


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    extents = ((0, MiB), (10 * MiB, 3 * MiB), (DISK_SIZE - 64 * 1024, 64 * 1024))
    return make_disk(tmp_path_factory.mktemp("disk") / "disk.raw", DISK_SIZE, extents)


@pytest.fixture(scope="module")
def source(registry: Registry, disk: Path) -> str:
    reference = f"{registry.url}/{REPOSITORY}:0.1"
    with registry.client() as client:
        push.push(disk, reference, kind=push.CONTAINER_DISK, comp="gzip", client=client)
    return reference


def _sha256_padded(path: Path, size: int) -> str:
    """The sha256 of the file grown with zeros to size: what a resized import holds."""
    digest = hashlib.sha256(path.read_bytes())
    digest.update(bytes(size - path.stat().st_size))
    return digest.hexdigest()


def _pull_secret(cluster: Cluster, namespace: str, config: dict[str, Any]) -> None:
    """The kubernetes.io/dockerconfigjson Secret `pull` holding config."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "pull"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }
    cluster.apply(namespace, secret)


def _populator_pod(source: str, *, block: bool) -> dict[str, Any]:
    target = "/dev/target" if block else "/target"
    container: dict[str, Any] = {
        "name": "populate",
        "image": POPULATOR_IMAGE,
        "imagePullPolicy": "Never",
        "args": [
            f"--source={source}",
            f"--target={target}",
            f"--target-size={TARGET_SIZE}",
            "--plain-http",
            "--pull-secret=/var/run/secrets/vmdiskimage/pull/.dockerconfigjson",
            "--progress-interval=0.5",
        ],
        "volumeMounts": [
            {"name": "pull", "mountPath": "/var/run/secrets/vmdiskimage/pull", "readOnly": True}
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if block:
        container["volumeDevices"] = [{"name": "target", "devicePath": target}]
    else:
        container["volumeMounts"].append({"name": "target", "mountPath": target})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "populate"},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "fsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": [
                {"name": "target", "persistentVolumeClaim": {"claimName": "target"}},
                {"name": "pull", "secret": {"secretName": "pull"}},
            ],
        },
    }


def _run_populator(
    cluster: Cluster, namespace: str, pod: dict[str, Any]
) -> tuple[str, dict[str, Any], str]:
    """Run the pod to its end; return its phase, termination message and what to show."""
    cluster.apply(namespace, pod)
    cluster.wait_for(
        "the populator pod to finish",
        lambda: pod_phase(cluster, namespace, "populate") in ("Succeeded", "Failed"),
        timeout=180,
        on_timeout=lambda: cluster.describe(namespace),
    )
    status = cluster.get(namespace, "pod", "populate")["status"]
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    logs = cluster.kubectl("-n", namespace, "logs", "populate", check=False)
    return (
        status["phase"],
        json.loads(terminated["message"]),
        f"{logs}\n{cluster.describe(namespace)}",
    )


@pytest.mark.parametrize("block", [False, True], ids=["filesystem", "block"])
def test_populator_pod_imports_the_disk_into_a_pvc(
    cluster: Cluster, namespace: str, registry: Registry, source: str, disk: Path, block: bool
) -> None:
    _pull_secret(cluster, namespace, registry.dockerconfigjson())
    cluster.apply(namespace, pvc_manifest("target", "hostpath", block=block, size="64Mi"))

    phase, result, details = _run_populator(cluster, namespace, _populator_pod(source, block=block))

    assert phase == "Succeeded", details
    assert result["result"] == "Succeeded"
    assert result["kind"] == "containerDisk"
    assert result["digest"].startswith("sha256:")
    if block:
        # A block device keeps its own size; the disk's bytes are at its start.
        script = f"head -c {DISK_SIZE} /dev/xvda | sha256sum"
        expected = hashlib.sha256(disk.read_bytes()).hexdigest()
    else:
        script = "stat -c 'size=%s' /data/disk.img; sha256sum < /data/disk.img"
        expected = _sha256_padded(disk, TARGET_SIZE)
    logs = run_pod(cluster, namespace, "verify", script, pvc="target", block=block)
    assert expected in logs
    if not block:
        assert f"size={TARGET_SIZE}" in logs


def test_populator_pod_fails_with_a_reason_on_wrong_credentials(
    cluster: Cluster, namespace: str, registry: Registry, source: str
) -> None:
    _pull_secret(cluster, namespace, registry.dockerconfigjson(password="wrong"))
    cluster.apply(namespace, pvc_manifest("target", "hostpath", size="64Mi"))

    phase, message, details = _run_populator(
        cluster, namespace, _populator_pod(source, block=False)
    )

    assert phase == "Failed", details
    assert message["result"] == "Failed"
    assert message["reason"] == "AuthenticationFailed", message
