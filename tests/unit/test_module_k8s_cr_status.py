"""k8s_cr_status: argument validation and condition merging (no API server needed)."""

from __future__ import annotations

import pytest

from tests.module_harness import module_utils, run_module

pytestmark = pytest.mark.unit

conditions = module_utils("conditions")

OBJ = {"api_version": "vm.example.com/v1alpha1", "kind": "VMDiskImage", "name": "a"}
T0, T1 = "2026-11-26T10:00:00Z", "2026-11-26T11:00:00Z"


@pytest.mark.parametrize(
    ("args", "reason", "fragment"),
    [
        ({"conditions": [{"type": "ready", "status": "True"}]}, "InvalidCondition", "'ready'"),
        (
            {"conditions": [{"type": "Ready", "status": "True", "reason": "all good"}]},
            "InvalidCondition",
            "'all good' must be a CamelCase word",
        ),
        ({"status": {"conditions": []}}, "InvalidCondition", "'conditions' option"),
        (
            {"conditions": [{"type": "Ready", "status": "True", "reson": "Typo"}]},
            "InvalidCondition",
            "unknown keys reson",
        ),
        (
            {"conditions": [{"type": "Ready", "status": "Maybe"}]},
            "InvalidCondition",
            "True, False, Unknown",
        ),
        ({"conditions": [{"status": "True"}]}, "InvalidCondition", "condition type None"),
    ],
)
def test_bad_conditions_fail_before_contacting_the_api(args, reason, fragment):
    result = run_module("k8s_cr_status", dict(OBJ, **args))
    assert result["failed"] is True
    assert result["reason"] == reason
    assert fragment in result["msg"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"name": None}, "missing required arguments: name"),
        ({"observed_generation": "two"}, "observed_generation"),
    ],
)
def test_argument_spec_rejects(args, fragment):
    result = run_module("k8s_cr_status", {k: v for k, v in dict(OBJ, **args).items() if v})
    assert result["failed"] is True
    assert fragment in result["msg"]


def test_unreachable_api_server_is_named_in_the_failure():
    result = run_module(
        "k8s_cr_status",
        dict(OBJ, status={"phase": "Pending"}),
        env={"K8S_AUTH_HOST": "http://127.0.0.1:1", "K8S_AUTH_API_KEY": "token"},
    )
    assert result["failed"] is True
    assert result["reason"] == "ApiServerUnreachable"
    assert "K8S_AUTH_HOST" in result["msg"]


# (existing conditions, update, expected lastTransitionTime of the updated type)
TRANSITIONS = [
    pytest.param([], {"type": "Ready", "status": "False"}, T1, id="new-condition"),
    pytest.param(
        [{"type": "Ready", "status": "False", "lastTransitionTime": T0}],
        {"type": "Ready", "status": "False", "reason": "Copying"},
        T0,
        id="same-status-keeps-time",
    ),
    pytest.param(
        [{"type": "Ready", "status": "False", "lastTransitionTime": T0}],
        {"type": "Ready", "status": "True"},
        T1,
        id="flip-sets-time",
    ),
    pytest.param(
        [{"type": "Ready", "status": "Unknown", "lastTransitionTime": T0}],
        {"type": "Ready", "status": "False"},
        T1,
        id="unknown-to-false-is-a-flip",
    ),
    pytest.param(
        [{"type": "Ready", "status": "True"}],
        {"type": "Ready", "status": "True"},
        T1,
        id="missing-old-time-is-filled",
    ),
]


@pytest.mark.parametrize(("existing", "update", "expected_time"), TRANSITIONS)
def test_last_transition_time_changes_only_on_a_flip(existing, update, expected_time):
    merged = conditions.merge_conditions(existing, [update], T1, generation=3)
    (ready,) = [c for c in merged if c["type"] == "Ready"]
    assert ready["lastTransitionTime"] == expected_time
    assert ready["status"] == update["status"]
    assert ready["observedGeneration"] == 3


def test_other_condition_types_are_kept_in_order():
    existing = [
        {"type": "Ready", "status": "False", "lastTransitionTime": T0},
        {"type": "Progressing", "status": "True", "lastTransitionTime": T0},
    ]
    merged = conditions.merge_conditions(
        existing, [{"type": "Ready", "status": "True"}, {"type": "Degraded", "status": "False"}], T1
    )
    assert [c["type"] for c in merged] == ["Ready", "Progressing", "Degraded"]
    assert merged[1] == existing[1]
    assert existing[0]["status"] == "False", "the input list must not be modified"


def test_boolean_status_is_written_as_a_string():
    (cond,) = conditions.merge_conditions([], [{"type": "Ready", "status": True}], T1)
    assert cond["status"] == "True"


@pytest.mark.parametrize(
    ("current", "patch", "expected"),
    [
        ({"phase": "Pending"}, {"phase": "Copying"}, {"phase": "Copying"}),
        ({"phase": "Copying", "progress": "50%"}, {"progress": None}, {"phase": "Copying"}),
        ({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}, {"a": {"b": 1, "c": 3}}),
        ({"list": [1, 2]}, {"list": [3]}, {"list": [3]}),
        ({}, {"missing": None}, {}),
    ],
)
def test_status_fields_merge_like_a_json_merge_patch(current, patch, expected):
    assert conditions.merge_status(current, patch) == expected


def test_desired_status_sets_observed_generation_and_is_stable():
    first = conditions.desired_status(
        {}, {"phase": "Ready"}, [{"type": "Ready", "status": "True"}], T0, 4
    )
    assert first["observedGeneration"] == 4
    again = conditions.desired_status(
        first, {"phase": "Ready"}, [{"type": "Ready", "status": "True"}], T1, 4
    )
    assert again == first, "repeating the same update must change nothing (changed=false)"
    unset = conditions.desired_status({}, {"phase": "Ready"}, [], T0, 4, False)
    assert "observedGeneration" not in unset


@pytest.mark.parametrize(
    ("before", "after", "patch"),
    [
        pytest.param({"a": 1}, {"a": 1}, {}, id="same"),
        pytest.param({"a": 1}, {"a": 2, "b": 3}, {"a": 2, "b": 3}, id="changed-and-added"),
        pytest.param({"a": 1, "b": 2}, {"a": 1}, {"b": None}, id="removed"),
        pytest.param(
            {"claims": {"x": {"phase": "Copying"}, "y": {"phase": "Ready"}}},
            {"claims": {"y": {"phase": "Ready"}}},
            {"claims": {"x": None}},
            id="nested-removed",
        ),
        pytest.param(
            {"claims": {"x": {"phase": "Copying", "progress": "5%"}}},
            {"claims": {"x": {"phase": "Ready"}}},
            {"claims": {"x": {"phase": "Ready", "progress": None}}},
            id="nested-changed",
        ),
        pytest.param({"c": [1, 2]}, {"c": [2]}, {"c": [2]}, id="lists-replaced"),
    ],
)
def test_the_patch_sent_removes_what_the_merge_removed(before, after, patch):
    assert conditions.merge_patch_between(before, after) == patch
    # Applying the patch to what was there gives what was meant, at every depth.
    assert conditions.merge_status(before, patch) == after
