"""The claim marker's choice of claims to label (the watch itself runs in the cluster tier)."""

from __future__ import annotations

import pytest

from vmdiskimage.claim_marker import LABEL, needs_label

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
