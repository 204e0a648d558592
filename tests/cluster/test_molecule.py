"""The molecule `default` scenario (molecule/default) on the local node: the operator
deployed with kustomize, the samples imported and checked, everything destroyed.

It deploys its own in-cluster operator, so it runs in a module of its own, never while
tests/cluster/test_operator.py's host operator runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.conftest import CRD
from tests.cluster.kube import REPO, Cluster

pytestmark = pytest.mark.cluster


def test_molecule_default_scenario(cluster: Cluster, tmp_path: Path) -> None:
    env = {
        **os.environ,
        **cluster.env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_FORCE_COLOR": "0",
        "NO_COLOR": "1",
        "MOLECULE_EPHEMERAL_DIRECTORY": str(tmp_path / "molecule"),
    }
    try:
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "molecule"), "test", "--scenario-name", "default"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        (tmp_path / "molecule.log").write_text(proc.stdout + proc.stderr)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-12000:]
        output = proc.stdout + proc.stderr
        # Each step ran, and verify got to its last check.
        for step in ("prepare", "converge", "idempotence", "verify", "destroy"):
            assert f"{step}" in output
        assert "Require the published disk, grown to the target size, in every volume" in output
        # destroy left nothing of the operator behind.
        assert cluster.kubectl("get", "namespace", "vmdiskimage-system", "--ignore-not-found") == ""
        assert cluster.kubectl("get", "namespace", "molecule-samples", "--ignore-not-found") == ""
    finally:
        # destroy removes the VMDiskImage CRD, which other modules share: restore it.
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
        cluster.kubectl(
            "wait", "--for=condition=Established", "crd/vmdiskimages.vm.example.com",
            "--timeout=60s",
        )  # fmt: skip
