"""The node really runs pods on dynamically provisioned volumes.

Each test writes with one pod and reads back with another, so the data went through the
CSI driver's volume and not through a container's own filesystem.
"""

from __future__ import annotations

import uuid

import pytest

from tests.cluster.kube import Cluster, pvc_manifest, pvc_phase, run_pod

pytestmark = pytest.mark.cluster

NODE_NAME = "vmdi-node"


def test_node_is_ready(cluster: Cluster) -> None:
    node = cluster.get("default", "node", NODE_NAME)
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
    assert ready == "True"
    assert node["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.33.")


def test_pods_reach_the_api_through_the_kubernetes_service(
    cluster: Cluster, namespace: str
) -> None:
    # The operator runs in a pod; there is no kube-proxy, only a DNAT for this service.
    logs = run_pod(
        cluster,
        namespace,
        "api",
        """python3 - <<'PY'
import json, os, ssl, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
ctx = ssl.create_default_context(cafile=f"{sa}/ca.crt")
host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
req = urllib.request.Request(f"https://{host}:{port}/version",
                             headers={"Authorization": "Bearer " + open(f"{sa}/token").read()})
print("version=" + json.load(urllib.request.urlopen(req, context=ctx, timeout=10))["gitVersion"])
PY""",
        api_access=True,
    )
    assert "version=v1.33." in logs


def test_filesystem_volume_keeps_what_a_pod_wrote(cluster: Cluster, namespace: str) -> None:
    token = uuid.uuid4().hex
    cluster.apply(namespace, pvc_manifest("fs", "hostpath"))
    run_pod(
        cluster,
        namespace,
        "writer",
        # The marker file proves the pod runs the locally built smoke image.
        f"grep -q smoke /etc/vmdi-smoke; echo {token} > /data/token; sync",
        pvc="fs",
    )
    logs = run_pod(cluster, namespace, "reader", "cat /data/token; df -P /data", pvc="fs")
    assert token in logs
    assert pvc_phase(cluster, namespace, "fs") == "Bound"


def test_block_volume_keeps_raw_bytes(cluster: Cluster, namespace: str) -> None:
    token = uuid.uuid4().hex  # 32 bytes, written 1 MiB into the device
    cluster.apply(namespace, pvc_manifest("blk", "hostpath", block=True, size="32Mi"))
    run_pod(
        cluster,
        namespace,
        "writer",
        f"test -b /dev/xvda; printf {token} | dd of=/dev/xvda bs=1M seek=1 conv=fsync status=none",
        pvc="blk",
        block=True,
    )
    logs = run_pod(
        cluster,
        namespace,
        "reader",
        "test -b /dev/xvda; echo size=$(blockdev --getsize64 /dev/xvda); "
        "dd if=/dev/xvda bs=1M skip=1 count=1 status=none | head -c 32; echo",
        pvc="blk",
        block=True,
    )
    assert f"size={32 * 1024 * 1024}" in logs
    assert token in logs


def test_wait_for_first_consumer_binds_when_the_pod_is_scheduled(
    cluster: Cluster, namespace: str
) -> None:
    cluster.apply(namespace, pvc_manifest("late", "hostpath-wffc"))
    # With no consumer the claim must stay unbound; the binder says why in an event.
    cluster.wait_for(
        "the WaitForFirstConsumer event",
        lambda: (
            "WaitForFirstConsumer"
            in cluster.kubectl(
                "-n",
                namespace,
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=late",
                check=False,
            )
        ),
        timeout=60,
    )
    pvc = cluster.get(namespace, "pvc", "late")
    assert pvc["status"]["phase"] == "Pending"
    assert not pvc["spec"].get("volumeName")

    run_pod(cluster, namespace, "consumer", "echo hi > /data/f; cat /data/f", pvc="late")
    pvc = cluster.get(namespace, "pvc", "late")
    assert pvc["status"]["phase"] == "Bound"
    assert pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == NODE_NAME
