"""population_info: the pure parts (progress lines, termination messages); the cluster
tier runs the module against real pods through the operator."""

from __future__ import annotations

import json

import pytest

from tests.module_harness import module_utils, run_module

pytestmark = pytest.mark.unit

population = module_utils("population")

LINE = '{"progress":{"phase":"Copying","bytesDone":%d,"bytesTotal":100,"percent":%.1f}}'


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        pytest.param("", None, id="empty"),
        pytest.param(
            LINE % (10, 10.0),
            {"phase": "Copying", "bytesDone": 10, "bytesTotal": 100, "percent": 10.0},
            id="one-line",
        ),
        pytest.param("\n".join([LINE % (10, 10.0), LINE % (60, 60.0)]), 60, id="latest-wins"),
        pytest.param(
            "\n".join([LINE % (60, 60.0), "INFO imported sha256:..."]),
            60,
            id="log-line-after-progress",
        ),
        pytest.param(
            "\n".join([LINE % (40, 40.0), '{"progress":{"phase":']), 40, id="cut-line-skipped"
        ),
        pytest.param('{"other":1}\nERROR something', None, id="no-progress"),
    ],
)
def test_latest_progress(log, expected):
    got = population.latest_progress(log)
    if isinstance(expected, int):
        assert got["bytesDone"] == expected
    else:
        assert got == expected


@pytest.mark.parametrize(
    ("terminated", "expected"),
    [
        pytest.param(None, None, id="running"),
        pytest.param({"exitCode": 137, "reason": "OOMKilled"}, None, id="no-message"),
        pytest.param({"message": "panic: not json"}, None, id="not-json"),
        pytest.param({"message": "[1, 2]"}, None, id="json-but-not-an-object"),
        pytest.param(
            {"message": json.dumps({"result": "Failed", "reason": "ImageNotFound"})},
            {"result": "Failed", "reason": "ImageNotFound"},
            id="failure",
        ),
    ],
)
def test_parse_result(terminated, expected):
    assert population.parse_result(terminated) == expected


@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        pytest.param(None, "ImageFetching", id="no-progress-yet"),
        pytest.param({"phase": "ImageFetching"}, "ImageFetching", id="fetching"),
        pytest.param({"phase": "Copying", "percent": 50.0}, "Copying", id="copying"),
        pytest.param({"phase": "Converting"}, "Copying", id="converting-is-copying"),
        pytest.param({"phase": "Resizing"}, "Resizing", id="resizing"),
        # The pod printed its last line and is about to end: the status's phases have no
        # word for that (Ready comes once the claim holds the volume).
        pytest.param({"phase": "Succeeded", "percent": 100.0}, None, id="succeeded"),
        pytest.param({"phase": "SomethingNew"}, None, id="unknown"),
        pytest.param({"bytesDone": 1}, "ImageFetching", id="no-phase"),
    ],
)
def test_status_phase_of_a_running_import(progress, expected):
    assert population.status_phase(progress) == expected


def test_container_terminated_reads_the_first_container():
    pod = {"status": {"containerStatuses": [{"state": {"terminated": {"exitCode": 0}}}]}}
    assert population.container_terminated(pod) == {"exitCode": 0}
    assert population.container_terminated({"status": {}}) is None
    assert population.container_terminated(None) is None


def _pod(phase, exit_codes=(), restart_policy="Never", deleting=False):
    statuses = [
        {"state": {"running": {}} if code is None else {"terminated": {"exitCode": code}}}
        for code in exit_codes
    ]
    return {
        "metadata": {"deletionTimestamp": "2026-12-04T16:29:49Z"} if deleting else {},
        "spec": {"restartPolicy": restart_policy},
        "status": {"phase": phase, "containerStatuses": statuses},
    }


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        pytest.param(_pod("Pending"), "Pending", id="pending"),
        pytest.param(_pod("Running", [None]), "Running", id="running"),
        pytest.param(_pod("Succeeded", [0]), "Succeeded", id="succeeded"),
        pytest.param(_pod("Failed", [1]), "Failed", id="failed"),
        # The container has ended and the kubelet has not moved the phase on yet.
        pytest.param(_pod("Running", [0]), "Succeeded", id="exited-0"),
        pytest.param(_pod("Running", [137]), "Failed", id="killed"),
        pytest.param(_pod("Running", [0, None]), "Running", id="one-container-still-runs"),
        pytest.param(_pod("Running", [0], "OnFailure"), "Running", id="restarting-pod"),
        # Deleted mid-copy: whatever it does next, its result is not used.
        pytest.param(_pod("Running", [None], deleting=True), "Terminating", id="deleted"),
        pytest.param(_pod("Running", [0], deleting=True), "Terminating", id="deleted-exited-0"),
        pytest.param(_pod("Succeeded", [0], deleting=True), "Terminating", id="deleted-succeeded"),
        pytest.param({"status": {}}, "Pending", id="no-phase-yet"),
        pytest.param(None, None, id="no-pod"),
    ],
)
def test_pod_phase_counts_a_pod_whose_containers_ended_as_ended(pod, expected):
    assert population.pod_phase(pod) == expected


def test_the_module_refuses_missing_arguments():
    result = run_module("population_info", {"name": "x"})
    assert result["failed"] is True
    assert "namespace" in result["msg"]
