"""k8s_event against the real API server: events recorded once and counted on repeats."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.module_harness import run_module, run_playbook

pytestmark = pytest.mark.cluster


def _event(cluster, ns, **args):
    module_args = {
        "api_version": "v1",
        "kind": "ConfigMap",
        "name": "target",
        "namespace": ns,
        "type": "Warning",
        "reason": "VMDiskImageNotFound",
        "note": "VMDiskImage fedora does not exist; create it.",
        **args,
    }
    check = module_args.pop("_check", False)
    module_args = {k: v for k, v in module_args.items() if v is not None}
    return run_module(
        "k8s_event", module_args, check_mode=check, env={"K8S_AUTH_KUBECONFIG": cluster.kubeconfig}
    )


def _ok(result):
    assert result.get("failed") is not True, result.get("msg")
    return result


def _events_about(cluster, namespace, name):
    out = cluster.kubectl(
        "-n", namespace, "get", "events", "-o", "json",
        "--field-selector", f"involvedObject.name={name}",
    )  # fmt: skip
    return json.loads(out)["items"]


@pytest.fixture
def target(cluster, namespace):
    cluster.kubectl("-n", namespace, "create", "configmap", "target")
    return cluster.get(namespace, "configmap", "target")


def test_repeats_raise_the_count_of_one_event(cluster, namespace, target):
    first = _ok(_event(cluster, namespace))
    assert first["changed"] is True
    assert first["count"] == 1
    second = _ok(_event(cluster, namespace))
    assert second["name"] == first["name"]
    assert second["count"] == 2
    (event,) = _events_about(cluster, namespace, "target")
    assert event["count"] == 2
    assert event["type"] == "Warning"
    assert event["reason"] == "VMDiskImageNotFound"
    assert event["involvedObject"]["uid"] == target["metadata"]["uid"]
    assert event["involvedObject"]["kind"] == "ConfigMap"
    assert event["source"]["component"] == "vmdiskimage-operator"
    assert event["lastTimestamp"] >= event["firstTimestamp"]

    _ok(_event(cluster, namespace, note="Another message."))
    _ok(_event(cluster, namespace, type="Normal", reason="Resolved", note="ok"))
    counts = sorted(e["count"] for e in _events_about(cluster, namespace, "target"))
    assert counts == [1, 1, 2]


def test_concurrent_repeats_are_all_counted(cluster, namespace, target):
    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda _: _event(cluster, namespace, reason="Burst"), range(5)))
    for result in results:
        _ok(result)
    (event,) = _events_about(cluster, namespace, "target")
    assert event["count"] == 5


def test_check_mode_records_nothing(cluster, namespace, target):
    result = _ok(_event(cluster, namespace, _check=True))
    assert result["count"] == 1
    assert _events_about(cluster, namespace, "target") == []


def test_missing_object_fails_unless_its_uid_is_given(cluster, namespace):
    missing = _event(cluster, namespace, name="ghost")
    assert missing["failed"] is True
    assert missing["reason"] == "NotFound"
    assert "ghost" in missing["msg"]
    given = _ok(
        _event(cluster, namespace, name="ghost", uid="0d6d3a5e-0000-4000-8000-000000000001")
    )
    assert given["event"]["involvedObject"]["uid"].startswith("0d6d3a5e")


def test_cluster_scoped_objects_get_events_in_default(cluster, namespace):
    result = _ok(
        _event(cluster, namespace, kind="Namespace", name=namespace, namespace=None, reason="Seen")
    )
    assert result["event"]["metadata"]["namespace"] == "default"
    cluster.kubectl("-n", "default", "delete", "event", result["name"])


def test_lowercase_reason_is_refused(cluster, namespace, target):
    result = _event(cluster, namespace, reason="notCamel")
    assert result["failed"] is True
    assert result["reason"] == "InvalidReason"


def test_emit_event_playbook_twice_counts_two(cluster, namespace, target):
    extra = {
        "object_kind": "ConfigMap",
        "object_name": "target",
        "object_namespace": namespace,
        "reason": "ByHand",
        "note": "Recorded from a playbook.",
    }
    for _ in range(2):
        rc, _, output = run_playbook(
            "emit_event.yml", extra, env={"K8S_AUTH_KUBECONFIG": cluster.kubeconfig}
        )
        assert rc == 0, output
    (event,) = _events_about(cluster, namespace, "target")
    assert (event["reason"], event["count"]) == ("ByHand", 2)
