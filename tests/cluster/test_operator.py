"""The operator end to end: the real ansible-operator running this checkout's roles
against the local node imports disks from a registry on the pod network into PVCs.

Each test checks the data (a pod reads the volume back and hashes it), the status and
events a user sees, and that nothing is left behind: no prime PVC, no populator pod,
no PersistentVolume that is not bound to a live claim, no finalizer on the claim.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.kube import Cluster, pod_phase
from tests.cluster.operator import (
    MIB,
    Operator,
    assert_clean,
    claim_finalizers,
    dump,
    event_reasons,
    expected_sha256,
    leftovers,
    orphan_volumes,
    populated_claim,
    pull_secret,
    read_back,
    status,
    vmdiskimage,
    wait_bound,
    wait_phase,
)
from tests.support.images import kubevirt_vm_export, make_disk, skopeo_copy, to_qcow2
from tests.support.registry import Registry, start_registry
from vmdiskimage import push

pytestmark = pytest.mark.cluster

DISK_SIZE = 24 * MIB
TARGET_SIZE = 64 * MIB
FS, WFFC = "hostpath", "hostpath-wffc"


# -- fixtures: one operator, two registries on the bridge, a few published disks ----------


@pytest.fixture(scope="module")
def operator(
    cluster: Cluster, crd: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    op = Operator(cluster, tmp_path_factory.mktemp("operator"))
    op.start()
    yield op
    try:
        # Every test's namespace is gone by now: so must be every volume of its claims.
        cluster.wait_for(
            "the volumes of the tests' claims to be deleted",
            lambda: orphan_volumes(cluster) == [],
            timeout=120,
            on_timeout=lambda: str(orphan_volumes(cluster)),
        )
    finally:
        op.stop()


@pytest.fixture(scope="module")
def registry(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Plain HTTP, anonymous: the registry most tests pull from."""
    with start_registry(tmp_path_factory.mktemp("e2e-registry"), host=cluster.bridge_ip) as reg:
        yield reg


@pytest.fixture(scope="module")
def private_registry(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registry]:
    """TLS with a private CA and basic auth: needs caBundleConfigMap and a pull secret."""
    workdir = tmp_path_factory.mktemp("e2e-private-registry")
    with start_registry(workdir, host=cluster.bridge_ip, tls=True, auth="basic") as reg:
        yield reg


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    extents = ((0, MIB), (10 * MIB, 3 * MIB), (DISK_SIZE - 64 * 1024, 64 * 1024))
    return make_disk(tmp_path_factory.mktemp("e2e-disk") / "disk.raw", DISK_SIZE, extents, seed=7)


def _publish(registry: Registry, disk: Path, repo: str, kind: str, comp: str) -> str:
    reference = f"{registry.url}/{repo}"
    with registry.client() as client:
        push.push(disk, reference, kind=kind, comp=comp, client=client)
    return reference


@pytest.fixture(scope="module")
def container_disk(registry: Registry, disk: Path) -> str:
    return _publish(registry, disk, "disks/raw-cd:1", push.CONTAINER_DISK, "gzip")


@pytest.fixture(scope="module")
def artifact(registry: Registry, disk: Path) -> str:
    return _publish(registry, disk, "disks/raw-artifact:1", push.ARTIFACT, "zstd")


@pytest.fixture(scope="module")
def qcow2_disk(registry: Registry, disk: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    qcow2 = to_qcow2(disk, tmp_path_factory.mktemp("e2e-qcow2") / "disk.qcow2")
    return _publish(registry, qcow2, "disks/qcow2-cd:1", push.CONTAINER_DISK, "gzip")


@pytest.fixture(scope="module")
def private_disk(private_registry: Registry, disk: Path) -> str:
    return _publish(private_registry, disk, "disks/private:1", push.CONTAINER_DISK, "gzip")


@pytest.fixture(scope="module")
def vm_export(
    registry: Registry, disk: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """A VM exported by KubeVirt: rootdisk (the test disk) and datadisk, one layer each."""
    work = tmp_path_factory.mktemp("e2e-export")
    data = make_disk(work / "data.raw", 8 * MIB, ((MIB, MIB), (6 * MIB, 4096)), seed=11)
    layout = kubevirt_vm_export(work / "layout", {"rootdisk": disk, "datadisk": data})
    skopeo_copy(layout, registry, "exports/vm:1", "--all")
    return f"{registry.url}/exports/vm:1", data


# -- helpers -------------------------------------------------------------------------------


def _apply_private(
    cluster: Cluster,
    namespace: str,
    registry: Registry,
    source: str,
    name: str,
    password: str | None = None,
    secret: str | None = "pull",
) -> None:
    """A VMDiskImage of the private registry: pull secret ``secret`` (or a name that no
    Secret has, when None), CA ConfigMap, created PVC."""
    if secret:
        credentials = registry.dockerconfigjson(password=password)
        cluster.apply(namespace, pull_secret(secret, credentials))
    ca_bundle = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "registry-ca"},
        "data": {"ca.crt": Path(registry.ca_file).read_text()},  # type: ignore[arg-type]
    }
    cluster.apply(namespace, ca_bundle)
    cluster.apply(
        namespace,
        vmdiskimage(
            name,
            source,
            f"{name}-root",
            insecureRegistry=False,
            pullSecretName=secret or "absent",
            caBundleConfigMap={"name": "registry-ca"},
            targetPVC={"name": f"{name}-root", "createIfNotExist": True},
        ),
    )


# -- happy paths ---------------------------------------------------------------------------


def test_create_if_not_exist_filesystem_container_disk(
    cluster: Cluster, namespace: str, operator: Operator, container_disk: str, disk: Path
) -> None:
    cluster.apply(
        namespace,
        vmdiskimage(
            "cirros",
            container_disk,
            "cirros-root",
            targetPVC={"name": "cirros-root", "createIfNotExist": True, "storageClass": FS},
        ),
    )

    final = wait_phase(cluster, namespace, "cirros", "Ready", operator)

    wait_bound(cluster, namespace, "cirros-root", operator)
    assert final["digest"].startswith("sha256:")
    assert final["sourceKind"] == "containerDisk"
    assert final["progress"] == "100.0%"
    assert final["claims"]["cirros-root"]["phase"] == "Ready"
    ready = {c["type"]: c for c in final["conditions"]}["Ready"]
    assert ready["status"] == "True", final
    logs = read_back(cluster, namespace, "cirros-root", block=False, size=TARGET_SIZE)
    assert expected_sha256(disk, TARGET_SIZE) in logs
    assert f"size={TARGET_SIZE}" in logs
    assert "PopulationSucceeded" in event_reasons(
        cluster, namespace, "PersistentVolumeClaim", "cirros-root"
    )
    assert "TargetPVCCreated" in event_reasons(cluster, namespace, "VMDiskImage", "cirros")
    # The VMDiskImage does not own the PVC: deleting it never deletes the disk.
    assert not cluster.get(namespace, "pvc", "cirros-root")["metadata"].get("ownerReferences")
    assert_clean(cluster, namespace, operator)


def test_user_written_block_claim_from_an_artifact(
    cluster: Cluster, namespace: str, operator: Operator, artifact: str, disk: Path
) -> None:
    cluster.apply(namespace, vmdiskimage("art", artifact, "art-disk"))
    # Nothing but the dataSourceRef: no label, no annotation (the populator contract).
    cluster.apply(namespace, populated_claim("art-disk", "art", FS, block=True, size="64Mi"))

    final = wait_phase(cluster, namespace, "art", "Ready", operator)

    wait_bound(cluster, namespace, "art-disk", operator)
    assert final["sourceKind"] == "artifact"
    logs = read_back(cluster, namespace, "art-disk", block=True, size=DISK_SIZE)
    assert hashlib.sha256(disk.read_bytes()).hexdigest() in logs
    assert_clean(cluster, namespace, operator)


def test_wait_for_first_consumer_imports_on_the_consumers_node(
    cluster: Cluster, namespace: str, operator: Operator, container_disk: str, disk: Path
) -> None:
    cluster.apply(namespace, vmdiskimage("wffc", container_disk, "wffc-disk"))
    cluster.apply(namespace, populated_claim("wffc-disk", "wffc", WFFC))
    cluster.wait_for(
        "the VMDiskImage to say it waits for a consumer",
        lambda: "waiting for a pod" in status(cluster, namespace, "wffc").get("message", ""),
        timeout=120,
        on_timeout=lambda: dump(cluster, namespace, operator),
    )
    assert leftovers(cluster, namespace) == []  # nothing is started before the node is known

    # The consumer: a pod that reads the disk; its scheduling picks the node.
    logs = read_back(cluster, namespace, "wffc-disk", block=False, size=TARGET_SIZE)

    assert expected_sha256(disk, TARGET_SIZE) in logs
    wait_phase(cluster, namespace, "wffc", "Ready", operator)
    assert_clean(cluster, namespace, operator)


def test_qcow2_source_is_converted_to_raw(
    cluster: Cluster, namespace: str, operator: Operator, qcow2_disk: str, disk: Path
) -> None:
    cluster.apply(
        namespace,
        vmdiskimage(
            "q", qcow2_disk, "q-root", targetPVC={"name": "q-root", "createIfNotExist": True}
        ),
    )

    final = wait_phase(cluster, namespace, "q", "Ready", operator)

    assert final["sourceFormat"] == "qcow2"
    assert final["virtualSize"] == DISK_SIZE
    logs = read_back(cluster, namespace, "q-root", block=False, size=TARGET_SIZE)
    assert expected_sha256(disk, TARGET_SIZE) in logs
    assert_clean(cluster, namespace, operator)


def test_private_tls_registry_with_a_pull_secret(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    private_registry: Registry,
    private_disk: str,
    disk: Path,
) -> None:
    _apply_private(cluster, namespace, private_registry, private_disk, "private")

    final = wait_phase(cluster, namespace, "private", "Ready", operator)

    # The operator never reads the Secret: the first import resolved and pinned the digest.
    assert final["digest"].startswith("sha256:")
    logs = read_back(cluster, namespace, "private-root", block=False, size=TARGET_SIZE)
    assert expected_sha256(disk, TARGET_SIZE) in logs
    assert_clean(cluster, namespace, operator)


def test_two_claims_from_one_vmdiskimage_get_the_same_bytes(
    cluster: Cluster, namespace: str, operator: Operator, container_disk: str, disk: Path
) -> None:
    cluster.apply(namespace, vmdiskimage("shared", container_disk, "first"))
    cluster.apply(
        namespace,
        populated_claim("first", "shared", FS),
        populated_claim("second", "shared", FS, block=True, size="64Mi"),
    )

    wait_phase(cluster, namespace, "shared", "Ready", operator)
    wait_bound(cluster, namespace, "second", operator)

    claims = status(cluster, namespace, "shared")["claims"]
    assert claims["first"]["phase"] == claims["second"]["phase"] == "Ready", claims
    assert claims["first"]["digest"] == claims["second"]["digest"]
    assert expected_sha256(disk, TARGET_SIZE) in read_back(
        cluster, namespace, "first", block=False, size=TARGET_SIZE
    )
    assert hashlib.sha256(disk.read_bytes()).hexdigest() in read_back(
        cluster, namespace, "second", block=True, size=DISK_SIZE
    )
    assert_clean(cluster, namespace, operator)


def test_disk_of_a_vm_export_is_chosen_by_disk_name(
    cluster: Cluster, namespace: str, operator: Operator, vm_export: tuple[str, Path]
) -> None:
    source, data = vm_export
    target = {"name": "vm-data", "createIfNotExist": True, "storageClass": FS}
    cluster.apply(namespace, vmdiskimage("vm", source, "vm-data", targetPVC=target))

    # Two disks and no name: the user is told which names there are.
    failed = wait_phase(cluster, namespace, "vm", "Failed", operator, timeout=120)
    assert "'rootdisk' and 'datadisk'" in failed["message"], failed
    assert "spec.diskName" in failed["message"], failed
    assert "DiskNameRequired" in event_reasons(cluster, namespace, "VMDiskImage", "vm")
    assert leftovers(cluster, namespace) == []

    cluster.apply(
        namespace, vmdiskimage("vm", source, "vm-data", targetPVC=target, diskName="datadisk")
    )

    final = wait_phase(cluster, namespace, "vm", "Ready", operator)
    wait_bound(cluster, namespace, "vm-data", operator)
    # Sized from the layer's io.kubevirt.disk.size: its zstd frames do not say.
    assert (final["sourceKind"], final["virtualSize"]) == ("artifact", 8 * MIB), final
    logs = read_back(cluster, namespace, "vm-data", block=False, size=TARGET_SIZE)
    assert expected_sha256(data, TARGET_SIZE) in logs
    assert_clean(cluster, namespace, operator)


# -- failures a user can act on ------------------------------------------------------------


def test_a_tag_that_does_not_exist_fails_with_an_event(
    cluster: Cluster, namespace: str, operator: Operator, registry: Registry
) -> None:
    cluster.apply(namespace, vmdiskimage("missing", f"{registry.url}/disks/nothing:1", "m"))

    final = wait_phase(cluster, namespace, "missing", "Failed", operator, timeout=120)

    assert "spec.sourceImage" in final["message"] and "nothing" in final["message"], final
    assert "ImageNotFound" in event_reasons(cluster, namespace, "VMDiskImage", "missing")


def test_bad_pull_credentials_fail_with_an_event_on_the_claim(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    private_registry: Registry,
    private_disk: str,
) -> None:
    # Both at once, in one namespace: a wrong password, and a Secret that does not exist
    # (not a pod in ContainerCreating for ever: the populator says which Secret is missing).
    cases = {
        "denied": ("AuthenticationFailed", "AuthenticationFailed"),
        "nosecret": ("InvalidCredentials", "pull secret 'absent' does not exist"),
    }
    _apply_private(cluster, namespace, private_registry, private_disk, "denied", password="wrong")
    _apply_private(cluster, namespace, private_registry, private_disk, "nosecret", secret=None)

    for name, (reason, says) in cases.items():
        final = wait_phase(cluster, namespace, name, "Failed", operator)
        assert reason in final["message"] and says in final["message"], (name, final)
        assert reason in event_reasons(cluster, namespace, "PersistentVolumeClaim", f"{name}-root")
        assert cluster.get(namespace, "pvc", f"{name}-root")["status"]["phase"] == "Pending"


def test_a_target_smaller_than_the_disk_fails_naming_both_sizes(
    cluster: Cluster, namespace: str, operator: Operator, container_disk: str
) -> None:
    cluster.apply(
        namespace,
        vmdiskimage(
            "small",
            container_disk,
            "small-root",
            targetSize="8Mi",
            targetPVC={"name": "small-root", "createIfNotExist": True},
        ),
    )

    final = wait_phase(cluster, namespace, "small", "Failed", operator, timeout=120)

    assert "spec.targetSize 8Mi" in final["message"], final
    assert str(DISK_SIZE) in final["message"] or "24Mi" in final["message"], final
    assert "TargetTooSmall" in event_reasons(cluster, namespace, "VMDiskImage", "small")
    assert leftovers(cluster, namespace) == []


# -- convergence -----------------------------------------------------------------------------


def test_operator_killed_mid_import_converges(
    cluster: Cluster, namespace: str, operator: Operator, container_disk: str, disk: Path
) -> None:
    cluster.apply(namespace, vmdiskimage("crash", container_disk, "crash-disk"))
    cluster.apply(namespace, populated_claim("crash-disk", "crash", FS))
    uid = cluster.get(namespace, "pvc", "crash-disk")["metadata"]["uid"]
    cluster.wait_for(
        "the populator pod to be created",
        lambda: pod_phase(cluster, namespace, f"populate-{uid}") != "",
        timeout=120,
        on_timeout=lambda: dump(cluster, namespace, operator),
    )

    operator.kill()
    try:
        # The import finishes while no operator runs; nothing moves on without it.
        cluster.wait_for(
            "the populator pod to finish",
            lambda: pod_phase(cluster, namespace, f"populate-{uid}") == "Succeeded",
            timeout=120,
            on_timeout=lambda: cluster.describe(namespace),
        )
        assert cluster.get(namespace, "pvc", "crash-disk")["status"]["phase"] == "Pending"
    finally:
        operator.start()

    wait_phase(cluster, namespace, "crash", "Ready", operator)
    wait_bound(cluster, namespace, "crash-disk", operator)
    assert expected_sha256(disk, TARGET_SIZE) in read_back(
        cluster, namespace, "crash-disk", block=False, size=TARGET_SIZE
    )
    assert_clean(cluster, namespace, operator)


def test_claim_deleted_mid_import_is_cleaned_up(
    cluster: Cluster, namespace: str, operator: Operator, container_disk: str
) -> None:
    cluster.apply(namespace, vmdiskimage("gone", container_disk, "gone-disk"))
    cluster.apply(namespace, populated_claim("gone-disk", "gone", WFFC))
    cluster.wait_for(
        "the claim to carry the populate finalizer",
        lambda: "vm.example.com/populate" in claim_finalizers(cluster, namespace, "gone-disk"),
        timeout=120,
        on_timeout=lambda: dump(cluster, namespace, operator),
    )

    cluster.kubectl("-n", namespace, "delete", "pvc", "gone-disk", "--wait=true", "--timeout=120s")

    assert_clean(cluster, namespace, operator)
    assert "gone-disk" not in status(cluster, namespace, "gone").get("claims", {})


def test_vmdiskimage_deleted_keeps_a_filled_pvc(
    cluster: Cluster, namespace: str, operator: Operator, container_disk: str
) -> None:
    cluster.apply(
        namespace,
        vmdiskimage(
            "keep",
            container_disk,
            "keep-root",
            targetPVC={"name": "keep-root", "createIfNotExist": True},
        ),
    )
    wait_phase(cluster, namespace, "keep", "Ready", operator)

    cluster.kubectl(
        "-n", namespace, "delete", "vmdiskimage", "keep", "--wait=true", "--timeout=120s"
    )

    pvc = cluster.get(namespace, "pvc", "keep-root")
    assert pvc["status"]["phase"] == "Bound"
    assert pvc["metadata"].get("deletionTimestamp") is None
    assert_clean(cluster, namespace, operator)


def test_unrelated_claims_are_not_touched(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    plain = populated_claim("plain", "x", FS)
    del plain["spec"]["dataSourceRef"]
    cluster.apply(namespace, plain)
    cluster.wait_for(
        "the unrelated claim to bind",
        lambda: cluster.get(namespace, "pvc", "plain")["status"].get("phase") == "Bound",
        timeout=60,
    )
    meta = cluster.get(namespace, "pvc", "plain")["metadata"]
    assert "vm.example.com/populate" not in (meta.get("labels") or {})
    assert "vm.example.com/populate" not in (meta.get("finalizers") or [])
    # ansible-runner writes an input directory for every object it runs a role for.
    assert not Path(
        f"/tmp/ansible-operator/runner/v1/PersistentVolumeClaim/{namespace}/plain"
    ).exists()


def test_kubectl_get_vdi_shows_phase_progress_and_digest(
    cluster: Cluster, namespace: str, operator: Operator, container_disk: str
) -> None:
    cluster.apply(
        namespace,
        vmdiskimage(
            "prog",
            container_disk,
            "prog-root",
            targetPVC={"name": "prog-root", "createIfNotExist": True},
        ),
    )
    final = wait_phase(cluster, namespace, "prog", "Ready", operator)
    printed = cluster.kubectl("-n", namespace, "get", "vdi", "prog", "-o", "wide")
    assert "Ready" in printed and "100.0%" in printed and final["digest"] in printed, printed
