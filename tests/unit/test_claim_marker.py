"""The claim marker's choices: claims to label, populator pods whose end nudges the operator
(the watches themselves run in the cluster tier)."""

from __future__ import annotations

import pytest

from vmdiskimage.claim_marker import LABEL, needs_label, nudge

pytestmark = pytest.mark.unit

REF = {"apiGroup": "vm.example.com", "kind": "VMDiskImage", "name": "fedora"}


def _claim(ref=REF, volume="", labels=None, deleting=False):
    meta = {"name": "c", "namespace": "n", "labels": labels or {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-03T00:00:00Z"
    spec = {"dataSourceRef": ref} if ref is not None else {}
    if volume:
        spec["volumeName"] = volume
    return {"metadata": meta, "spec": spec}


@pytest.mark.parametrize(
    ("claim", "expected"),
    [
        pytest.param(_claim(), True, id="unbound-claim-of-a-vmdiskimage"),
        pytest.param(_claim(ref=None), False, id="no-data-source"),
        pytest.param(
            _claim(
                ref={"kind": "VolumeSnapshot", "name": "s", "apiGroup": "snapshot.storage.k8s.io"}
            ),
            False,
            id="snapshot",
        ),
        pytest.param(_claim(ref={**REF, "apiGroup": "other.example.com"}), False, id="other-group"),
        pytest.param(_claim(ref={"kind": "VMDiskImage", "name": "x"}), False, id="core-group"),
        pytest.param(_claim(volume="pv-1"), False, id="already-bound"),
        pytest.param(_claim(labels={LABEL: "true"}), False, id="already-labelled"),
        pytest.param(_claim(labels={LABEL: ""}), False, id="labelled-empty"),
        pytest.param(_claim(deleting=True), False, id="being-deleted"),
        pytest.param({"metadata": {}, "spec": None}, False, id="no-spec"),
    ],
)
def test_needs_label(claim, expected):
    assert needs_label(claim) is expected


def _pod(phase="Succeeded", uid="p-1", deleting=False, labels=None, claim="prime-c-1"):
    meta = {
        "name": "populate-c-1",
        "namespace": "n",
        "uid": uid,
        "labels": {"app.kubernetes.io/name": "vmdiskimage-populator"} if labels is None else labels,
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-12-03T00:00:00Z"
    volumes = [{"name": "scratch", "emptyDir": {}}]
    if claim:
        volumes.append({"name": "target", "persistentVolumeClaim": {"claimName": claim}})
    return {"metadata": meta, "spec": {"volumes": volumes}, "status": {"phase": phase}}


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        pytest.param(_pod(), ("prime-c-1", "p-1 Succeeded"), id="succeeded"),
        pytest.param(_pod(phase="Failed"), ("prime-c-1", "p-1 Failed"), id="failed"),
        # A retry's pod that fails like the one before still nudges: its UID differs.
        pytest.param(_pod("Failed", uid="p-2"), ("prime-c-1", "p-2 Failed"), id="next-attempt"),
        pytest.param(_pod(phase="Running"), None, id="running"),
        pytest.param(_pod(phase="Pending"), None, id="pending"),
        pytest.param(_pod(deleting=True), None, id="being-deleted"),
        pytest.param(_pod(labels={}), None, id="not-a-populator-pod"),
        pytest.param(_pod(claim=None), None, id="no-target-claim"),
        pytest.param({"metadata": {}}, None, id="empty"),
    ],
)
def test_nudge_names_the_prime_claim_of_an_ended_populator_pod(pod, expected):
    assert nudge(pod) == expected
