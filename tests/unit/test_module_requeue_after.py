"""requeue_after: the period ansible-operator reads back, and refusal of what Go cannot parse."""

from __future__ import annotations

import pytest

from tests.module_harness import run_module, run_task

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("period", ["5s", "1m30s", "500ms", "2h", "1.5s"])
def test_a_go_duration_is_returned_as_period(period):
    result = run_module("requeue_after", {"period": period})
    assert result.get("failed") is not True, result
    assert result["period"] == period
    assert result["changed"] is False


@pytest.mark.parametrize("period", ["5", "five seconds", "5 s", "-5s", "s", ""])
def test_anything_else_is_refused_with_a_reason(period):
    result = run_module("requeue_after", {"period": period})
    assert result["failed"] is True
    assert result["reason"] == "InvalidArgument"
    assert "Go duration" in result["msg"]


def _run_task(tmp_path, period):
    """The requeue_after task, by the short name ansible-operator matches, in a play
    whose Python interpreter does not exist."""
    return run_task(
        tmp_path,
        {"name": "Look again later", "requeue_after": {"period": period}},
        play_vars={"ansible_python_interpreter": "/nonexistent/python3"},
    )


# Every reconcile that requeues ends with this task, and ansible-operator returns the
# reconcile when its result arrives: no Python module process may delay that. Any module
# run would fail on the interpreter that does not exist.
def test_the_task_runs_in_the_controller_with_no_module_process(tmp_path):
    rc, result = _run_task(tmp_path, "5s")
    assert rc == 0, result
    assert result["period"] == "5s"
    assert result["changed"] is False


def test_the_task_refuses_what_go_cannot_parse(tmp_path):
    rc, result = _run_task(tmp_path, "5 s")
    assert rc == 2, result
    assert result["reason"] == "InvalidArgument"
    assert "Go duration" in result["msg"]
