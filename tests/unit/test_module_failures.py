"""The one exception -> fail_json translation every module uses."""

from __future__ import annotations

import json

import pytest

from tests.module_harness import module_utils
from vmdiskimage import errors

pytestmark = pytest.mark.unit

failures = module_utils("failures")
k8s = module_utils("k8s")


def _api_error(status: int, reason: str, message: str):
    body = json.dumps({"kind": "Status", "reason": reason, "message": message})
    return k8s.ApiError(status, reason, body)


@pytest.mark.parametrize(
    ("exc", "reason", "fragments"),
    [
        (
            _api_error(403, "Forbidden", 'cannot patch resource "persistentvolumes"'),
            "Forbidden",
            ["403", "persistentvolumes", "grant the missing permission"],
        ),
        (_api_error(404, "NotFound", "pvc x not found"), "NotFound", ["404", "pvc x not found"]),
        (_api_error(409, "Conflict", "changed"), "Conflict", ["run the task again"]),
        (
            k8s.ApiUnreachable("https://127.0.0.1:1: Connection refused"),
            "ApiServerUnreachable",
            ["cannot reach the Kubernetes API server"],
        ),
        (
            failures.ModuleFailure("PV is bound elsewhere", "BoundToOtherClaim"),
            "BoundToOtherClaim",
            ["bound elsewhere"],
        ),
        (
            k8s.ConfigError("kubeconfig /x has no current-context; give a context"),
            "KubernetesClientError",
            ["no current-context"],
        ),
        (ValueError("boom"), "InternalError", ["ValueError", "boom"]),
    ],
)
def test_exceptions_become_a_message_and_a_reason(exc, reason, fragments):
    result = failures.describe_exception(exc, "Doing the thing")
    assert result["reason"] == reason
    for fragment in fragments:
        assert fragment in result["msg"]


def test_package_errors_keep_their_reason_and_details():
    exc = errors.TargetTooSmall("target 1Gi is below 2Gi", target_size=1, virtual_size=2)
    result = failures.describe_exception(exc, "Sizing")
    assert result == {
        "msg": "Sizing: target 1Gi is below 2Gi",
        "reason": "TargetTooSmall",
        "target_size": 1,
        "virtual_size": 2,
    }


def test_module_failure_details_are_returned():
    exc = failures.ModuleFailure("x", "BoundToOtherClaim", claim_ref={"name": "other"})
    assert failures.describe_exception(exc, "a")["claim_ref"] == {"name": "other"}


def test_unexpected_errors_carry_the_traceback():
    try:
        raise KeyError("spec")
    except KeyError as exc:
        result = failures.describe_exception(exc, "a")
    assert "Traceback" in result["exception"]


def test_unexpected_errors_never_quote_a_signed_url():
    signed = "https://bucket.example/blob?X-Amz-Signature=s3cr3t&X-Amz-Credential=AKIA"
    try:
        raise ConnectionError(f"Max retries exceeded with url: {signed}")
    except ConnectionError as exc:
        result = failures.describe_exception(exc, "Reading the blob")
    assert "bucket.example/blob?<redacted>" in result["msg"]
    for text in (result["msg"], result["exception"]):
        assert "s3cr3t" not in text
        assert "AKIA" not in text
