"""k8s_event: argument validation and event naming (no API server needed)."""

from __future__ import annotations

import re

import pytest

from tests.module_harness import module_utils, run_module

pytestmark = pytest.mark.unit

events = module_utils("events")

OBJ = {"api_version": "v1", "kind": "PersistentVolumeClaim", "name": "disk", "namespace": "vms"}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@pytest.mark.parametrize(
    "reason", ["imageNotFound", "Image not found", "Image-Not-Found", "", "9Lives", "A" * 129]
)
def test_reasons_that_are_not_camel_case_are_refused(reason):
    result = run_module("k8s_event", dict(OBJ, reason=reason, note="m"))
    assert result["failed"] is True
    assert result["reason"] == "InvalidReason"
    assert repr(reason)[:20] in result["msg"]


@pytest.mark.parametrize("reason", ["ImageNotFound", "Ready", "PVCBound", "Retry2"])
def test_camel_case_reasons_pass_validation(reason):
    assert events.validate_reason(reason) is None


def test_event_type_is_normal_or_warning():
    result = run_module("k8s_event", dict(OBJ, reason="Ok", note="m", type="Error"))
    assert result["failed"] is True
    assert "Normal, Warning" in result["msg"]


def test_same_event_same_name_and_different_event_different_name():
    name = events.event_name("disk", "uid-1", "Warning", "ImageNotFound", "no such tag")
    assert name == events.event_name("disk", "uid-1", "Warning", "ImageNotFound", "no such tag")
    others = {
        events.event_name("disk", "uid-2", "Warning", "ImageNotFound", "no such tag"),
        events.event_name("disk", "uid-1", "Normal", "ImageNotFound", "no such tag"),
        events.event_name("disk", "uid-1", "Warning", "ImageFound", "no such tag"),
        events.event_name("disk", "uid-1", "Warning", "ImageNotFound", "other tag"),
    }
    assert name not in others
    assert len(others) == 4
    assert name.startswith("disk.")


@pytest.mark.parametrize("involved", ["a" * 253, "Upper_Case.Name", "x.", "-"])
def test_event_names_are_valid_object_names(involved):
    name = events.event_name(involved, "u", "Normal", "R", "m")
    assert len(name) <= 253
    assert DNS_SUBDOMAIN.match(name), name


def test_long_messages_are_cut_and_marked():
    assert events.truncate_message("x" * 10) == "x" * 10
    cut = events.truncate_message("x" * 5000)
    assert len(cut) == events.MAX_MESSAGE
    assert cut.endswith("...")


def test_a_repeat_raises_the_count_and_guards_the_write():
    event = {"metadata": {"resourceVersion": "42"}, "count": 3}
    patch = events.repeat_patch(event, "2026-11-26T10:00:00Z")
    assert patch == {
        "metadata": {"resourceVersion": "42"},
        "count": 4,
        "lastTimestamp": "2026-11-26T10:00:00Z",
    }


def test_first_occurrence_body():
    ref = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": "disk", "uid": "u"}
    body = events.new_event("disk.x", "vms", ref, "Warning", "R", "m", "c", "i", "T")
    assert body["count"] == 1
    assert body["firstTimestamp"] == body["lastTimestamp"] == "T"
    assert body["involvedObject"] == ref
    assert body["source"] == {"component": "c"}
