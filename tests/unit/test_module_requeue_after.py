"""requeue_after: the period ansible-operator reads back, and refusal of what Go cannot parse."""

from __future__ import annotations

import pytest

from tests.module_harness import run_module

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
