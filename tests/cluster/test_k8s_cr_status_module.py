"""k8s_cr_status against the real API server: a VMDiskImage's status subresource."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.module_harness import run_module, run_playbook

pytestmark = pytest.mark.cluster


@pytest.fixture
def image(cluster, crd, namespace):
    doc = {
        "apiVersion": "vm.example.com/v1alpha1",
        "kind": "VMDiskImage",
        "metadata": {"name": "fedora"},
        "spec": {
            "sourceImage": "quay.io/containerdisks/fedora:41",
            "targetPVC": {"name": "fedora-root"},
            "targetSize": "1Gi",
        },
    }
    cluster.apply(namespace, doc)
    return namespace


def _status(cluster, namespace, **args):
    check = args.pop("_check", False)
    module_args = {
        "api_version": "vm.example.com/v1alpha1",
        "kind": "VMDiskImage",
        "name": "fedora",
        "namespace": namespace,
        **args,
    }
    return run_module(
        "k8s_cr_status",
        module_args,
        check_mode=check,
        diff=True,
        env={"K8S_AUTH_KUBECONFIG": cluster.kubeconfig},
    )


def _live(cluster, namespace):
    return cluster.get(namespace, "vmdiskimage", "fedora").get("status") or {}


def _ok(result):
    assert result.get("failed") is not True, result.get("msg")
    return result


def test_status_conditions_and_observed_generation(cluster, image):
    ns = image
    fetching = {"type": "Ready", "status": "False", "reason": "ImageFetching"}
    first = _ok(_status(cluster, ns, status={"phase": "ImageFetching"}, conditions=[fetching]))
    assert first["changed"] is True
    assert first["transitioned"] == ["Ready"]
    live = _live(cluster, ns)
    assert live["phase"] == "ImageFetching"
    assert live["observedGeneration"] == 1
    (ready,) = live["conditions"]
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == (
        "False",
        "ImageFetching",
        1,
    )
    started = ready["lastTransitionTime"]

    again = _ok(_status(cluster, ns, status={"phase": "ImageFetching"}, conditions=[fetching]))
    assert again["changed"] is False, "the same status again is no change"

    time.sleep(1.1)  # lastTransitionTime has second precision
    copying = dict(fetching, reason="Copying", message="42%")
    _ok(
        _status(cluster, ns, status={"phase": "Copying", "progress": "42.0%"}, conditions=[copying])
    )
    (ready,) = _live(cluster, ns)["conditions"]
    assert ready["reason"] == "Copying"
    assert ready["lastTransitionTime"] == started, "same status: the transition time stays"

    time.sleep(1.1)
    done = {"type": "Ready", "status": "True", "reason": "ImportSucceeded"}
    result = _ok(
        _status(cluster, ns, status={"phase": "Ready", "progress": None}, conditions=[done])
    )
    assert result["transitioned"] == ["Ready"]
    assert result["diff"]["before"]["phase"] == "Copying"
    live = _live(cluster, ns)
    assert live["phase"] == "Ready"
    assert "progress" not in live, "null removes a field"
    (ready,) = live["conditions"]
    assert ready["status"] == "True"
    assert ready["lastTransitionTime"] > started, "a flip moves the transition time"

    cluster.kubectl(
        "-n", ns, "patch", "vdi", "fedora", "--type=merge", "-p", '{"spec":{"targetSize":"2Gi"}}'
    )
    _ok(_status(cluster, ns, conditions=[done]))
    live = _live(cluster, ns)
    assert live["observedGeneration"] == 2
    assert live["conditions"][0]["lastTransitionTime"] == ready["lastTransitionTime"]


def test_a_nested_entry_set_to_null_is_removed(cluster, image):
    claims = {"one": {"phase": "Copying"}, "two": {"phase": "Ready"}}
    _ok(_status(cluster, image, status={"phase": "Copying", "claims": claims}))
    _ok(_status(cluster, image, status={"claims": {"one": None}}))
    assert _live(cluster, image)["claims"] == {"two": {"phase": "Ready"}}


def test_check_mode_writes_nothing(cluster, image):
    result = _ok(_status(cluster, image, status={"phase": "Pending"}, _check=True))
    assert result["changed"] is True
    assert result["status"]["phase"] == "Pending"
    assert _live(cluster, image) == {}


def test_concurrent_updates_of_different_conditions_all_land(cluster, image):
    types = ["Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot"]
    with ThreadPoolExecutor(len(types)) as pool:
        results = list(
            pool.map(
                lambda t: _status(cluster, image, conditions=[{"type": t, "status": "True"}]),
                types,
            )
        )
    for result in results:
        _ok(result)
    assert sorted(c["type"] for c in _live(cluster, image)["conditions"]) == types


def test_missing_object_and_kind_without_status(cluster, image):
    missing = _status(cluster, image, name="nope", status={"phase": "Pending"})
    assert missing["failed"] is True
    assert missing["reason"] == "NotFound"
    assert "nope" in missing["msg"]
    cluster.kubectl("-n", image, "create", "configmap", "plain")
    result = _status(
        cluster, image, api_version="v1", kind="ConfigMap", name="plain", status={"a": "b"}
    )
    assert result["failed"] is True
    assert result["reason"] == "NoStatusSubresource"


def test_forbidden_is_reported_with_a_hint(cluster, image):
    # A service account with no permissions at all, through a token in K8S_AUTH_API_KEY.
    cluster.kubectl("-n", image, "create", "serviceaccount", "nobody")
    token = cluster.kubectl("-n", image, "create", "token", "nobody").strip()
    server = cluster.kubectl(
        "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"
    )
    result = run_module(
        "k8s_cr_status",
        {
            "api_version": "vm.example.com/v1alpha1",
            "kind": "VMDiskImage",
            "name": "fedora",
            "namespace": image,
            "status": {"phase": "Pending"},
            "host": server,
            "api_key": token,
            "validate_certs": False,
        },
    )
    assert result["failed"] is True
    assert result["reason"] == "Forbidden"
    assert "grant the missing permission" in result["msg"]


def test_set_status_playbook(cluster, image):
    rc, _, output = run_playbook(
        "set_status.yml",
        {"vdi_namespace": image, "vdi": "fedora", "phase": "Failed", "message": "no such tag"},
        env={"K8S_AUTH_KUBECONFIG": cluster.kubeconfig},
    )
    assert rc == 0, output
    live = _live(cluster, image)
    assert (live["phase"], live["message"]) == ("Failed", "no such tag")
    assert live["conditions"][0]["reason"] == "Failed"
