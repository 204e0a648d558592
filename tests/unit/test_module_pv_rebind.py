"""pv_rebind: argument validation and failures before the API (no API server needed)."""

from __future__ import annotations

import pytest

from tests.module_harness import run_module

pytestmark = pytest.mark.unit

ARGS = {
    "name": "pv-1",
    "prime_claim": {"namespace": "populator", "name": "prime-1"},
    "claim": {"namespace": "vms", "name": "disk", "uid": "u-1"},
}


@pytest.mark.parametrize(
    ("drop", "fragment"),
    [
        ("name", "missing required arguments: name"),
        ("claim", "missing required arguments: claim"),
        ("prime_claim", "missing required arguments: prime_claim"),
    ],
)
def test_required_arguments(drop, fragment):
    result = run_module("pv_rebind", {k: v for k, v in ARGS.items() if k != drop})
    assert result["failed"] is True
    assert fragment in result["msg"]


def test_claim_needs_a_namespace():
    result = run_module("pv_rebind", dict(ARGS, claim={"name": "disk"}))
    assert result["failed"] is True
    assert "namespace" in result["msg"]


def test_unknown_option_is_refused():
    result = run_module("pv_rebind", dict(ARGS, claim=dict(ARGS["claim"], volume="x")))
    assert result["failed"] is True
    assert "volume" in result["msg"]


def test_missing_kubeconfig_gives_a_client_error(tmp_path):
    result = run_module(
        "pv_rebind",
        ARGS,
        env={"HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none"), "K8S_AUTH_HOST": ""},
    )
    assert result["failed"] is True
    assert result["reason"] == "KubernetesClientError"
    assert "pv-1" in result["msg"]


def test_unreachable_api_server_is_named_in_the_failure():
    result = run_module(
        "pv_rebind",
        ARGS,
        env={"K8S_AUTH_HOST": "http://127.0.0.1:1", "K8S_AUTH_API_KEY": "token"},
    )
    assert result["failed"] is True
    assert result["reason"] == "ApiServerUnreachable"
