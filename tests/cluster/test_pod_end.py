"""The end of a populator pod starts its claim's reconcile at once: the claim marker
watches populator pods and annotates the claim of one that has ended, and any change of
a labelled claim starts its reconcile.

The operator here looks at running imports only every 10 minutes
(populator_poll_period), so an import that finishes within a minute was finished by
the pod's end, not by a poll. It runs in a module of its own, with its own operator.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.kube import Cluster
from tests.cluster.operator import (
    MIB,
    Operator,
    assert_clean,
    expected_sha256,
    populated_claim,
    read_back,
    vmdiskimage,
    wait_bound,
    wait_phase,
)
from tests.support.images import make_disk
from tests.support.registry import Registry, start_registry
from vmdiskimage import push

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def slow_poll_operator(
    cluster: Cluster, crd: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    op = Operator(
        cluster,
        tmp_path_factory.mktemp("pod-end-operator"),
        # Nor does the run that creates the pod wait for its end.
        args=("--ansible-args=-e populator_poll_period=10m -e populator_wait_end_seconds=0",),
    )
    op.start()
    yield op
    op.stop()


@pytest.fixture(scope="module")
def registry(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with start_registry(tmp_path_factory.mktemp("pod-end-registry"), host=cluster.bridge_ip) as reg:
        yield reg


def test_an_import_finishes_when_its_pod_ends_not_at_the_next_poll(
    cluster: Cluster,
    namespace: str,
    slow_poll_operator: Operator,
    registry: Registry,
    tmp_path: Path,
) -> None:
    disk = make_disk(tmp_path / "disk.raw", 8 * MIB, ((0, MIB),), seed=11)
    source = f"{registry.url}/disks/pod-end:1"
    with registry.client() as client:
        push.push(disk, source, kind=push.CONTAINER_DISK, comp="gzip", client=client)
    cluster.apply(namespace, vmdiskimage("end", source, "end-disk", targetSize="16Mi"))
    cluster.apply(namespace, populated_claim("end-disk", "end", "hostpath", size="32Mi"))

    # Well within the 10-minute poll: only the pod's end can have started the reconcile
    # that rebinds the volume.
    wait_phase(cluster, namespace, "end", "Ready", slow_poll_operator, timeout=90)

    wait_bound(cluster, namespace, "end-disk", slow_poll_operator)
    assert expected_sha256(disk, 16 * MIB) in read_back(
        cluster, namespace, "end-disk", block=False, size=16 * MIB
    )
    assert "its populator pod ended (" in slow_poll_operator.log_path.read_text()
    # The nudge went with the label: the finished claim carries neither.
    meta = cluster.get(namespace, "pvc", "end-disk")["metadata"]
    assert "vm.example.com/populator-ended" not in (meta.get("annotations") or {})
    assert_clean(cluster, namespace, slow_poll_operator)
