"""The operator installed like a real operator: `make deploy` (kustomize, config/default)
on the local node gives an in-cluster manager that completes an import, whose service
account can do what the flow needs and nothing else (`kubectl auth can-i`), whose
metrics Service answers through kube-proxy, and `make undeploy` removes it all.

The in-cluster operator and the one tests/cluster/test_operator.py runs on the host
must never reconcile the same objects at once: this module deploys, checks and
undeploys within its own module fixture.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.conftest import CRD
from tests.cluster.kube import REPO, Cluster, run_pod
from tests.cluster.operator import MIB, populated_claim, status, vmdiskimage
from tests.support.images import make_disk
from tests.support.registry import Registry, start_registry
from vmdiskimage import push

pytestmark = pytest.mark.cluster

NS = "vmdiskimage-system"
SA = f"system:serviceaccount:{NS}:vmdiskimage-controller-manager"
DEPLOY = REPO / "hack" / "deploy.sh"
DISK_SIZE = 8 * MIB
TARGET_SIZE = 32 * MIB


def _deploy_script(cluster: Cluster, action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(DEPLOY), action],
        env={**os.environ, "KUBECONFIG": cluster.kubeconfig, "TIMEOUT": "180s"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def _manager_dump(cluster: Cluster) -> str:
    return (
        cluster.kubectl("-n", NS, "get", "deploy,pods,svc,endpoints", "-o", "wide", check=False)
        + cluster.kubectl("-n", NS, "describe", "pods", check=False)
        + cluster.kubectl("-n", NS, "logs", "deploy/vmdiskimage-controller-manager",
                          "--all-containers", "--tail=120", check=False)
    )  # fmt: skip


@pytest.fixture(scope="module")
def deployed(cluster: Cluster) -> Iterator[None]:
    """`make deploy`; at the end `make undeploy` again (idempotent) and the shared CRD back."""
    proc = _deploy_script(cluster, "deploy")
    assert proc.returncode == 0, proc.stdout + proc.stderr + _manager_dump(cluster)
    try:
        yield
    finally:
        _deploy_script(cluster, "undeploy")
        # Other modules share the VMDiskImage CRD (conftest's session fixture): restore it.
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
        cluster.kubectl(
            "wait", "--for=condition=Established", "crd/vmdiskimages.vm.example.com",
            "--timeout=60s",
        )  # fmt: skip


@pytest.fixture(scope="module")
def registry(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with start_registry(tmp_path_factory.mktemp("deploy-registry"), host=cluster.bridge_ip) as reg:
        yield reg


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    extents = ((0, MIB), (5 * MIB, 2 * MIB))
    return make_disk(
        tmp_path_factory.mktemp("deploy-disk") / "disk.raw", DISK_SIZE, extents, seed=11
    )


@pytest.fixture(scope="module")
def source(registry: Registry, disk: Path) -> str:
    reference = f"{registry.url}/disks/deploy:1"
    with registry.client() as client:
        push.push(disk, reference, kind=push.ARTIFACT, comp="zstd", client=client)
    return reference


# -- the manager ----------------------------------------------------------------------------


def test_manager_runs_in_cluster_as_deployed(cluster: Cluster, deployed: None) -> None:
    pods = json.loads(
        cluster.kubectl(
            "-n", NS, "get", "pods", "-l", "control-plane=controller-manager", "-o", "json"
        )
    )["items"]
    assert len(pods) == 1, _manager_dump(cluster)
    pod = pods[0]
    assert pod["status"]["phase"] == "Running"
    assert all(c["ready"] for c in pod["status"]["containerStatuses"]), _manager_dump(cluster)
    assert pod["spec"]["serviceAccountName"] == "vmdiskimage-controller-manager"
    # Admitted in a namespace that enforces the restricted Pod Security Standard.
    labels = json.loads(cluster.kubectl("get", "namespace", NS, "-o", "json"))["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    # The leader election Lease is held by this pod.
    lease = json.loads(
        cluster.kubectl("-n", NS, "get", "lease", "vmdiskimage-operator", "-o", "json")
    )
    assert lease["spec"]["holderIdentity"].startswith(pod["metadata"]["name"])
    populator = json.loads(cluster.kubectl("get", "volumepopulator", "vmdiskimage", "-o", "json"))
    assert populator["sourceKind"] == {"group": "vm.example.com", "kind": "VMDiskImage"}


# -- RBAC: kubectl auth can-i as the operator's service account -----------------------------

# (verb, resource, namespace or None for cluster-wide, expected). "t-any" is a namespace
# that does not exist: a ClusterRole grant holds in every namespace.
CAN_I = [
    ("watch", "vmdiskimages.vm.example.com", None, True),
    ("update", "vmdiskimages.vm.example.com", "t-any", True),
    ("patch", "vmdiskimages.vm.example.com/status", "t-any", True),
    ("list", "persistentvolumeclaims", None, True),
    ("create", "persistentvolumeclaims", "t-any", True),
    ("patch", "persistentvolumeclaims", "t-any", True),
    ("delete", "persistentvolumeclaims", "t-any", True),
    ("patch", "persistentvolumes", None, True),
    ("create", "pods", "t-any", True),
    ("watch", "pods", None, True),  # the claim marker, populator pods only (a label selector)
    ("delete", "pods", "t-any", True),
    ("get", "pods/log", "t-any", True),
    ("get", "configmaps", "t-any", True),
    ("create", "events", "t-any", True),
    ("patch", "events", "t-any", True),
    ("watch", "storageclasses.storage.k8s.io", None, True),
    ("update", "leases.coordination.k8s.io", NS, True),
    ("create", "tokenreviews.authentication.k8s.io", None, True),
    ("create", "subjectaccessreviews.authorization.k8s.io", None, True),
    # Never: Secrets in any way (design §5).
    ("get", "secrets", "t-any", False),
    ("list", "secrets", None, False),
    ("watch", "secrets", NS, False),
    ("create", "secrets", "t-any", False),
    # Nothing the flow does not need.
    ("create", "vmdiskimages.vm.example.com", "t-any", False),
    ("delete", "vmdiskimages.vm.example.com", "t-any", False),
    ("update", "persistentvolumeclaims/status", "t-any", False),
    ("create", "persistentvolumes", None, False),
    ("delete", "persistentvolumes", None, False),
    ("update", "pods", "t-any", False),
    ("create", "pods/exec", "t-any", False),
    ("list", "configmaps", None, False),
    ("update", "configmaps", "t-any", False),
    ("get", "leases.coordination.k8s.io", "kube-system", False),
    ("get", "nodes", None, False),
    ("delete", "namespaces", None, False),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", None, False),
    ("escalate", "clusterroles.rbac.authorization.k8s.io", None, False),
    ("update", "customresourcedefinitions.apiextensions.k8s.io", None, False),
    ("delete", "volumepopulators.populator.storage.k8s.io", None, False),
]


def _can_i(cluster: Cluster, verb: str, resource: str, namespace: str | None) -> bool:
    resource, _, sub = resource.partition("/")
    args = ["auth", "can-i", verb, resource, f"--as={SA}"]
    if sub:
        args.append(f"--subresource={sub}")
    args += ["-n", namespace] if namespace else ["--all-namespaces"]
    proc = subprocess.run(
        ["kubectl", "--kubeconfig", cluster.kubeconfig, *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), proc.stdout + proc.stderr
    return answer == "yes"


@pytest.mark.parametrize(
    ("verb", "resource", "namespace", "expected"),
    CAN_I,
    ids=[f"{'can' if e else 'cannot'}-{v}-{r}-{n or 'cluster'}" for v, r, n, e in CAN_I],
)
def test_service_account_can_i(
    cluster: Cluster,
    deployed: None,
    verb: str,
    resource: str,
    namespace: str | None,
    expected: bool,
) -> None:
    assert _can_i(cluster, verb, resource, namespace) is expected


# -- an import done by the in-cluster operator ------------------------------------------------


def test_in_cluster_operator_completes_an_import(
    cluster: Cluster, deployed: None, namespace: str, source: str, disk: Path
) -> None:
    cluster.apply(
        namespace,
        vmdiskimage(
            "deployed",
            source,
            "deployed-root",
            targetSize="32Mi",
            targetPVC={
                "name": "deployed-root",
                "createIfNotExist": True,
                "storageClass": "hostpath",
            },
        ),
    )
    cluster.wait_for(
        "the in-cluster operator to import the disk (VMDiskImage Ready)",
        lambda: status(cluster, namespace, "deployed").get("phase") == "Ready",
        timeout=240,
        on_timeout=lambda: (
            cluster.kubectl("-n", namespace, "get", "vdi,pvc,pods", "-o", "yaml", check=False)
            + cluster.describe(namespace)
            + _manager_dump(cluster)
        ),
    )
    cluster.wait_for(
        "the claim to be Bound",
        lambda: cluster.get(namespace, "pvc", "deployed-root")["status"].get("phase") == "Bound",
        timeout=120,
    )
    expected = hashlib.sha256(disk.read_bytes() + bytes(TARGET_SIZE - DISK_SIZE)).hexdigest()
    logs = run_pod(cluster, namespace, "verify", "sha256sum < /data/disk.img", pvc="deployed-root")
    assert expected in logs


# -- Services through kube-proxy ----------------------------------------------------------------


def _metrics_service_ip(cluster: Cluster) -> str:
    return cluster.kubectl(
        "-n", NS, "get", "svc", "vmdiskimage-controller-manager-metrics-service",
        "-o", "jsonpath={.spec.clusterIP}",
    ).strip()  # fmt: skip


def _scrape(url: str, token: str | None) -> tuple[int, str]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the manager's self-signed serving certificate
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_metrics_service_answers_through_kube_proxy_to_readers_only(
    cluster: Cluster, deployed: None, namespace: str
) -> None:
    cluster.kubectl("-n", namespace, "create", "serviceaccount", "scraper")
    cluster.kubectl("-n", namespace, "create", "serviceaccount", "stranger")
    binding = f"{namespace}-metrics-reader"
    cluster.kubectl(
        "create", "clusterrolebinding", binding, "--clusterrole=vmdiskimage-metrics-reader",
        f"--serviceaccount={namespace}:scraper",
    )  # fmt: skip
    try:
        url = f"https://{_metrics_service_ip(cluster)}:8443/metrics"
        scraper = cluster.kubectl("-n", namespace, "create", "token", "scraper").strip()
        stranger = cluster.kubectl("-n", namespace, "create", "token", "stranger").strip()
        # From this host: kube-proxy's OUTPUT rules turn the ClusterIP into the pod.
        cluster.wait_for(
            "the metrics Service to answer an allowed scraper",
            lambda: _scrape(url, scraper)[0] == 200,
            timeout=60,
            on_timeout=lambda: _manager_dump(cluster),
        )
        body = _scrape(url, scraper)[1]
        assert "controller_runtime_reconcile_total" in body
        assert _scrape(url, None)[0] == 401
        assert _scrape(url, stranger)[0] == 403
        # From a pod: pod -> ClusterIP -> another pod on the same bridge (PREROUTING).
        script = (
            "python3 - <<'EOF'\n"
            "import os, ssl, urllib.request\n"
            "ctx = ssl._create_unverified_context()\n"
            "auth = {'Authorization': 'Bearer ' + os.environ['TOKEN']}\n"
            "req = urllib.request.Request(os.environ['URL'], headers=auth)\n"
            "body = urllib.request.urlopen(req, context=ctx, timeout=10).read().decode()\n"
            "print('reconcile metrics:', 'controller_runtime_reconcile_total' in body)\n"
            "EOF"
        )
        logs = run_pod(cluster, namespace, "scrape", script, env={"URL": url, "TOKEN": scraper})
        assert "reconcile metrics: True" in logs
    finally:
        cluster.kubectl("delete", "clusterrolebinding", binding, check=False)


# -- make undeploy ----------------------------------------------------------------------------


def test_undeploy_removes_the_operator_and_releases_claims(
    cluster: Cluster, deployed: None, namespace: str
) -> None:
    # A claim the operator holds (label and finalizer) while its VMDiskImage is missing.
    cluster.apply(namespace, populated_claim("waiting", "not-there", "hostpath"))
    cluster.wait_for(
        "the operator to take the claim (its finalizer)",
        lambda: (
            "vm.example.com/populate"
            in (cluster.get(namespace, "pvc", "waiting")["metadata"].get("finalizers") or [])
        ),
        timeout=120,
        on_timeout=lambda: _manager_dump(cluster),
    )

    proc = _deploy_script(cluster, "undeploy")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert cluster.kubectl("get", "namespace", NS, "--ignore-not-found") == ""
    assert cluster.kubectl("get", "crd", "vmdiskimages.vm.example.com", "--ignore-not-found") == ""
    leftover = [
        name
        for kind in ("clusterroles", "clusterrolebindings", "volumepopulators")
        for name in cluster.kubectl("get", kind, "-o", "name").split()
        if "vmdiskimage" in name
    ]
    assert leftover == []
    claim = cluster.get(namespace, "pvc", "waiting")
    # Ours is gone (kubernetes.io/pvc-protection is Kubernetes' own and stays).
    assert "vm.example.com/populate" not in (claim["metadata"].get("finalizers") or [])
    assert "vm.example.com/populate" not in (claim["metadata"].get("labels") or {})
    # Nothing holds it any more: it can be deleted.
    cluster.kubectl("-n", namespace, "delete", "pvc", "waiting", "--timeout=60s")
