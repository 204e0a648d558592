"""Fixtures for the cluster tier: a real node from hack/cluster, driven with kubectl.

The `cluster` fixture fails (never skips) when the node is not up: `make test` brings it
up before this tier runs, so a missing node is a broken setup, not an optional extra.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.kube import REPO, Cluster, cluster_env

CRD = REPO / "config" / "crd" / "bases" / "vm.example.com_vmdiskimages.yaml"


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    """The node brought up by `hack/cluster/cluster.sh up`; fails loudly when absent."""
    env = cluster_env()
    kubeconfig = env["KUBECONFIG"]
    if not Path(kubeconfig).is_file():
        pytest.fail(
            f"no cluster: {kubeconfig} is missing. Start one with `make cluster-up` "
            f"(hack/cluster/cluster.sh up)."
        )
    proc = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "get", "--raw", "/readyz"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if proc.returncode != 0:
        pytest.fail(f"cluster API unreachable with {kubeconfig}: {proc.stderr.strip()}")
    return Cluster(
        kubeconfig=kubeconfig,
        bridge_ip=env["VMDI_BRIDGE_IP"],
        smoke_image=env["VMDI_SMOKE_IMAGE"],
        env=env,
    )


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted (with its PVCs and volumes) afterwards."""
    # Test names carry parameter ids ("test_x[a.yaml]"): keep what a label allows.
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    # Pods need the namespace's default service account before they can be created.
    cluster.wait_for(
        f"service account in {name}",
        lambda: cluster.kubectl("-n", name, "get", "sa", "default", check=False) != "",
        timeout=60,
    )
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=true", "--timeout=180s", check=False)


@pytest.fixture(scope="session")
def crd(cluster: Cluster) -> None:
    """The VMDiskImage CRD, applied and Established. Never deleted: tests share the kind."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/vmdiskimages.vm.example.com", "--timeout=60s"
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Keep each phase's report on the item, for fixtures that record outcomes."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
