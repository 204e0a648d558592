"""Fixtures for the bundle tier: operator-sdk, built from its Go module by hack/operator-sdk.sh."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def operator_sdk() -> str:
    """The operator-sdk binary (built once, cached by version); fails when it cannot be had."""
    proc = subprocess.run(
        [str(REPO / "hack" / "operator-sdk.sh")], capture_output=True, text=True, timeout=1800
    )
    if proc.returncode != 0:
        pytest.fail(f"hack/operator-sdk.sh failed:\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1]
