"""The claim marker's choices: claims to label, populator pods whose end nudges the operator
(the watches themselves run in the cluster tier)."""

from __future__ import annotations

import pytest

from vmdiskimage.claim_marker import (
    ENDED,
    FINALIZER,
    LABEL,
    mark_patch,
    needs_label,
    needs_nudge,
    nudge,
)

pytestmark = pytest.mark.unit

REF = {"apiGroup": "vm.example.com", "kind": "VMDiskImage", "name": "fedora"}


def _claim(ref=REF, volume="", labels=None, deleting=False, annotations=None, uid="c-1"):
    meta = {"name": "c", "namespace": "n", "uid": uid, "labels": labels or {}}
    if annotations:
        meta["annotations"] = annotations
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


def _pod(
    phase="Succeeded", uid="p-1", deleting=False, labels=None, populating="n/c", exit_codes=()
):
    meta = {
        "name": "populate-c-1",
        "namespace": "n",
        "uid": uid,
        "labels": {
            "app.kubernetes.io/name": "vmdiskimage-populator",
            "vm.example.com/prime-of": "c-1",
        }
        if labels is None
        else labels,
        "annotations": {"vm.example.com/populating": populating} if populating else {},
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-12-03T00:00:00Z"
    statuses = [
        {"state": {"running": {}} if code is None else {"terminated": {"exitCode": code}}}
        for code in exit_codes
    ]
    return {
        "metadata": meta,
        "spec": {"restartPolicy": "Never"},
        "status": {"phase": phase, "containerStatuses": statuses},
    }


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        pytest.param(_pod(), ("n", "c", "c-1", "p-1 Succeeded"), id="succeeded"),
        pytest.param(_pod(phase="Failed"), ("n", "c", "c-1", "p-1 Failed"), id="failed"),
        # A retry's pod that fails like the one before still nudges: its UID differs.
        pytest.param(_pod("Failed", uid="p-2"), ("n", "c", "c-1", "p-2 Failed"), id="next-attempt"),
        pytest.param(_pod(phase="Running"), None, id="running"),
        # Its container has ended: the pod has, though the kubelet has not said so yet.
        pytest.param(
            _pod("Running", exit_codes=[0]), ("n", "c", "c-1", "p-1 Succeeded"), id="exited-0"
        ),
        pytest.param(
            _pod("Running", exit_codes=[3]), ("n", "c", "c-1", "p-1 Failed"), id="exited-non-zero"
        ),
        pytest.param(_pod("Running", exit_codes=[0, None]), None, id="a-container-still-runs"),
        pytest.param(_pod("Running", exit_codes=[None]), None, id="container-running"),
        pytest.param(_pod(phase="Pending"), None, id="pending"),
        pytest.param(_pod(deleting=True), None, id="being-deleted"),
        pytest.param(_pod(labels={}), None, id="not-a-populator-pod"),
        pytest.param(_pod(populating=None), None, id="no-claim-named"),
        pytest.param(_pod(populating="other/c"), None, id="claim-in-another-namespace"),
        pytest.param({"metadata": {}}, None, id="empty"),
    ],
)
def test_nudge_names_the_claim_of_an_ended_populator_pod(pod, expected):
    assert nudge(pod) == expected


@pytest.mark.parametrize(
    ("claim", "expected"),
    [
        pytest.param(_claim(labels={LABEL: "true"}), True, id="labelled"),
        pytest.param(_claim(), False, id="not-labelled"),  # finished, or not ours
        pytest.param(
            _claim(labels={LABEL: "true"}, annotations={ENDED: "p-1 Succeeded"}),
            False,
            id="already-nudged",
        ),
        pytest.param(
            _claim(labels={LABEL: "true"}, annotations={ENDED: "p-0 Failed"}),
            True,
            id="nudged-for-an-earlier-attempt",
        ),
        pytest.param(_claim(labels={LABEL: "true"}, uid="other"), False, id="another-claim"),
        pytest.param(None, False, id="gone"),
    ],
)
def test_a_claim_is_nudged_once_while_it_is_populated(claim, expected):
    assert needs_nudge(claim, "c-1", "p-1 Succeeded") is expected


def test_the_label_comes_with_the_finalizer_and_keeps_the_claims_own():
    claim = _claim()
    claim["metadata"].update(resourceVersion="41", finalizers=["kubernetes.io/pvc-protection"])
    assert mark_patch(claim) == {
        "metadata": {
            # A claim changed since it was read is left to its next event (409).
            "resourceVersion": "41",
            "labels": {LABEL: "true"},
            # ansible-operator would add it before the first reconcile, an update that
            # starts a second one as soon as the first ends.
            "finalizers": ["kubernetes.io/pvc-protection", FINALIZER],
        }
    }


def test_a_finalizer_already_there_is_not_doubled():
    claim = _claim()
    claim["metadata"].update(resourceVersion="7", finalizers=[FINALIZER])
    assert mark_patch(claim)["metadata"]["finalizers"] == [FINALIZER]
