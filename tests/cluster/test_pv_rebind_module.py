"""pv_rebind against the real API server and PV controller, with the hostpath CSI driver."""

from __future__ import annotations

import pytest

from tests.cluster.kube import pvc_manifest, pvc_phase
from tests.module_harness import run_module

pytestmark = pytest.mark.cluster


def _user_pvc(name: str) -> dict:
    doc = pvc_manifest(name, "hostpath")
    doc["spec"]["dataSourceRef"] = {
        "apiGroup": "vm.example.com",
        "kind": "VMDiskImage",
        "name": "fedora",
    }
    return doc


@pytest.fixture
def volumes(cluster, namespace):
    """A bound prime PVC (its PV) and a user PVC that waits for a populator."""
    cluster.apply(namespace, pvc_manifest("prime", "hostpath"), _user_pvc("disk"))
    cluster.wait_for(
        "the prime PVC to bind",
        lambda: pvc_phase(cluster, namespace, "prime") == "Bound",
        timeout=120,
        on_timeout=lambda: cluster.describe(namespace),
    )
    prime = cluster.get(namespace, "pvc", "prime")
    user = cluster.get(namespace, "pvc", "disk")
    return prime, user


def _rebind(cluster, namespace, pv, prime, user, check=False, **extra):
    args = {
        "name": pv,
        "prime_claim": {"namespace": namespace, "name": "prime", "uid": prime["metadata"]["uid"]},
        "claim": {"namespace": namespace, "name": "disk"},
        **extra,
    }
    return run_module(
        "pv_rebind",
        args,
        check_mode=check,
        diff=True,
        env={"K8S_AUTH_KUBECONFIG": cluster.kubeconfig},
    )


def _ok(result):
    assert result.get("failed") is not True, result.get("msg")
    return result


def test_pv_moves_to_the_user_pvc_which_binds(cluster, namespace, volumes):
    prime, user = volumes
    pv = prime["spec"]["volumeName"]
    assert pvc_phase(cluster, namespace, "disk") == "Pending"

    result = _ok(_rebind(cluster, namespace, pv, prime, user))
    assert result["changed"] is True
    assert result["already_bound"] is False
    assert result["diff"]["before"]["claimRef"]["name"] == "prime"
    live = cluster.get("", "pv", pv)
    ref = live["spec"]["claimRef"]
    assert (ref["namespace"], ref["name"], ref["uid"]) == (
        namespace,
        "disk",
        user["metadata"]["uid"],
    )
    assert ref["resourceVersion"]
    assert live["metadata"]["annotations"]["vm.example.com/populated-from"] == f"{namespace}/prime"

    cluster.wait_for(
        "the user PVC to bind to the PV",
        lambda: pvc_phase(cluster, namespace, "disk") == "Bound",
        timeout=120,
        on_timeout=lambda: cluster.describe(namespace),
    )
    assert cluster.get(namespace, "pvc", "disk")["spec"]["volumeName"] == pv
    cluster.wait_for(
        "the prime PVC to be Lost",
        lambda: pvc_phase(cluster, namespace, "prime") == "Lost",
        timeout=120,
    )

    again = _ok(_rebind(cluster, namespace, pv, prime, user))
    assert again["changed"] is False
    assert again["already_bound"] is True


def test_wait_bound_returns_once_kubernetes_binds_the_claim(cluster, namespace, volumes):
    prime, user = volumes
    pv = prime["spec"]["volumeName"]
    result = _ok(_rebind(cluster, namespace, pv, prime, user, wait_bound=60))
    assert result["claim_bound"] is True
    # What the role reads next sees the binding already.
    assert cluster.get(namespace, "pvc", "disk")["spec"]["volumeName"] == pv
    # The role finishes the import from what the task returns, without reading again:
    # the bound claim and the volume with its annotation.
    assert result["claim"]["metadata"]["uid"] == user["metadata"]["uid"]
    assert result["claim"]["spec"]["volumeName"] == pv
    annotations = result["volume"]["metadata"]["annotations"]
    assert annotations["vm.example.com/populated-from"] == f"{namespace}/prime"
    assert result["volume"]["spec"]["claimRef"]["name"] == "disk"


def test_check_mode_shows_the_diff_and_leaves_the_pv(cluster, namespace, volumes):
    prime, user = volumes
    pv = prime["spec"]["volumeName"]
    result = _ok(_rebind(cluster, namespace, pv, prime, user, check=True))
    assert result["changed"] is True
    assert result["diff"]["after"]["claimRef"]["name"] == "disk"
    assert cluster.get("", "pv", pv)["spec"]["claimRef"]["name"] == "prime"
    # Nothing bound in check mode: the claim as it is, still without a volume.
    assert result["claim_bound"] is False
    assert not result["claim"]["spec"].get("volumeName")


def test_refuses_a_pv_bound_to_another_claim(cluster, namespace, volumes):
    prime, user = volumes
    pv = prime["spec"]["volumeName"]
    args = {"prime_claim": {"namespace": namespace, "name": "someone-else"}}
    result = _rebind(cluster, namespace, pv, prime, user, **args)
    assert result["failed"] is True
    assert result["reason"] == "BoundToOtherClaim"
    assert f"{namespace}/prime" in result["msg"]
    assert cluster.get("", "pv", pv)["spec"]["claimRef"]["name"] == "prime"


def test_missing_pv_and_missing_claim(cluster, namespace, volumes):
    prime, user = volumes
    result = _rebind(cluster, namespace, "pv-that-does-not-exist", prime, user)
    assert (result["failed"], result["reason"]) == (True, "NotFound")
    result = _rebind(
        cluster,
        namespace,
        prime["spec"]["volumeName"],
        prime,
        user,
        claim={"namespace": namespace, "name": "absent"},
    )
    assert (result["failed"], result["reason"]) == (True, "ClaimNotFound")
