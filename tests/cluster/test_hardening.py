"""Hardening: the operator under faults and bad input, end to end on the local node.

The real ansible-operator runs this checkout's roles (as in test_operator.py); a
registry on the pod network sits behind a front that breaks on demand
(tests/support/faults.py). Every test records one row (case, expected, observed) for
the table `make hardening` prints (hack/hardening-table.py).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.kube import REPO, Cluster, pod_phase, pvc_phase
from tests.cluster.operator import (
    MIB,
    Operator,
    assert_clean,
    claim_finalizers,
    dump,
    event_reasons,
    expected_sha256,
    orphan_volumes,
    populated_claim,
    pull_secret,
    read_back,
    status,
    vmdiskimage,
    wait_bound,
    wait_phase,
)
from tests.support.faults import FaultyFront
from tests.support.images import make_disk, tar_layer, to_qcow2
from tests.support.registry import Registry, free_port, start_registry
from vmdiskimage import push

pytestmark = [pytest.mark.cluster, pytest.mark.hardening]

DISK_SIZE = 24 * MIB
SLOW_SIZE = 32 * MIB
TARGET = 64 * MIB
RATE = 3 * MIB  # bytes a second through the front: the slow disk takes about 11 s
FS = "hostpath"
FINALIZER = "vm.example.com/populate"
TABLE = Path(os.environ.get("HARDENING_TABLE", REPO / "build" / "hardening-table.jsonl"))


# -- the table ---------------------------------------------------------------------------


@pytest.fixture
def row(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The test's row of the table; written with its outcome once the test is over."""
    entry = {"case": request.node.name, "expected": "", "observed": ""}
    yield entry
    report = getattr(request.node, "rep_call", None)
    entry["result"] = "pass" if report is not None and report.passed else "FAIL"
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    with TABLE.open("a") as table:
        table.write(json.dumps(entry) + "\n")


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def operator(
    cluster: Cluster, crd: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    op = Operator(cluster, tmp_path_factory.mktemp("hardening-operator"))
    op.start()
    yield op
    try:
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
    with start_registry(tmp_path_factory.mktemp("hard-registry"), host=cluster.bridge_ip) as reg:
        yield reg


@pytest.fixture(scope="module")
def basic_registry(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registry]:
    workdir = tmp_path_factory.mktemp("hard-basic-registry")
    with start_registry(workdir, host=cluster.bridge_ip, auth="basic") as reg:
        yield reg


@pytest.fixture(scope="module")
def tls_registry(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """HTTPS with a private CA that nothing in the cluster trusts."""
    workdir = tmp_path_factory.mktemp("hard-tls-registry")
    with start_registry(workdir, host=cluster.bridge_ip, tls=True) as reg:
        yield reg


@pytest.fixture(scope="module")
def front_server(cluster: Cluster, registry: Registry) -> Iterator[FaultyFront]:
    with FaultyFront(registry.url, cluster.bridge_ip) as front:
        yield front


@pytest.fixture
def front(front_server: FaultyFront) -> Iterator[FaultyFront]:
    """The front, healthy and serving, whatever the previous test left."""
    front_server.stop()
    front_server.rate, front_server.corrupt, front_server.busy = 0.0, False, 0
    front_server.answers.clear()
    front_server.seen.clear()
    front_server.start()
    yield front_server
    front_server.rate, front_server.corrupt, front_server.busy = 0.0, False, 0


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    extents = ((0, MIB), (10 * MIB, 3 * MIB), (DISK_SIZE - 64 * 1024, 64 * 1024))
    return make_disk(tmp_path_factory.mktemp("hard-disk") / "disk.raw", DISK_SIZE, extents, seed=9)


@pytest.fixture(scope="module")
def slow_disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random bytes all through: its blob is as large as the disk, whatever the codec."""
    path = tmp_path_factory.mktemp("hard-slow") / "slow.raw"
    return make_disk(path, SLOW_SIZE, ((0, SLOW_SIZE),), seed=10)


def _publish(registry: Registry, disk: Path, repo: str, kind: str, comp: str) -> str:
    with registry.client() as client:
        push.push(disk, f"{registry.url}/{repo}", kind=kind, comp=comp, client=client)
    return repo


@pytest.fixture(scope="module")
def small_repo(registry: Registry, disk: Path) -> str:
    return _publish(registry, disk, "hard/small:1", push.CONTAINER_DISK, "gzip")


@pytest.fixture(scope="module")
def slow_repo(registry: Registry, slow_disk: Path) -> str:
    return _publish(registry, slow_disk, "hard/slow:1", push.ARTIFACT, "zstd")


# -- helpers ---------------------------------------------------------------------------------


def _target(name: str, source: str, **spec: Any) -> dict[str, Any]:
    """A VMDiskImage that creates its target PVC `<name>-root` of 64Mi on hostpath.

    ``targetPVC`` in ``spec`` changes fields of that target.
    """
    target = {"name": f"{name}-root", "createIfNotExist": True, "storageClass": FS}
    target.update(spec.pop("targetPVC", {}))
    return vmdiskimage(name, source, f"{name}-root", targetPVC=target, **spec)


def _pods(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    items = json.loads(cluster.kubectl("-n", namespace, "get", "pods", "-o", "json"))["items"]
    return [p for p in items if p["metadata"]["name"].startswith("populate-")]


def _running_pod(cluster: Cluster, namespace: str, operator: Operator) -> dict[str, Any]:
    """Wait until a populator pod has been copying for a few seconds; return it."""
    cluster.wait_for(
        "a populator pod to run",
        lambda: any(p["status"].get("phase") == "Running" for p in _pods(cluster, namespace)),
        timeout=120,
        on_timeout=lambda: dump(cluster, namespace, operator),
    )
    time.sleep(3)  # well into the blob: at RATE, about 9 MiB of 32
    pods = [p for p in _pods(cluster, namespace) if p["status"].get("phase") == "Running"]
    assert pods, dump(cluster, namespace, operator)
    return pods[0]


def _watch_until(
    cluster: Cluster,
    what: str,
    done: Callable[[], bool],
    also: Callable[[], None],
    timeout: float,
    on_timeout: Callable[[], str],
) -> None:
    """wait_for that runs ``also`` at every look (to sample what happens meanwhile)."""

    def look() -> bool:
        also()
        return done()

    cluster.wait_for(what, look, timeout=timeout, on_timeout=on_timeout)


def _reasons(cluster: Cluster, namespace: str, kind: str, name: str) -> str:
    return ", ".join(sorted(event_reasons(cluster, namespace, kind, name)))


# -- faults ------------------------------------------------------------------------------------


def test_registry_restarted_mid_blob_resumes(
    cluster, namespace, operator, front, slow_repo, slow_disk, row
):
    row["expected"] = "import resumes after the registry is back; Ready; right bytes"
    front.rate = RATE
    cluster.apply(namespace, _target("restart", f"{front.url}/{slow_repo}"))
    pod = _running_pod(cluster, namespace, operator)

    front.stop()
    time.sleep(4)
    front.start()
    front.rate = 0.0

    final = wait_phase(cluster, namespace, "restart", "Ready", operator, timeout=240)
    pods_after = {p["metadata"]["uid"] for p in _pods(cluster, namespace)}
    assert expected_sha256(slow_disk, TARGET) in read_back(
        cluster, namespace, "restart-root", block=False, size=TARGET
    )
    assert_clean(cluster, namespace, operator)
    restarts = final["claims"]["restart-root"].get("restarts", 0)
    row["observed"] = (
        f"Ready, sha256 matches; blob GETs {front.seen['blob']} (resumed with a range), "
        f"pod restarts {restarts}"
    )
    assert front.seen["blob"] >= 2, "the pod asked again for the rest of the blob"
    assert pod["metadata"]["uid"] not in pods_after or restarts == 0


def test_progress_moves_while_copying(
    cluster, namespace, operator, front, slow_repo, slow_disk, row
):
    row["expected"] = (
        "kubectl get vdi shows Copying and a percentage that moves at least every 10 s"
    )
    # A third of RATE: about 30 s of copying, several of the operator's looks even on a
    # loaded machine (at RATE, one look could be all a busy CI host gave it).
    front.rate = RATE / 3
    cluster.apply(namespace, _target("prog", f"{front.url}/{slow_repo}"))
    seen: list[tuple[float, str, str]] = []  # (time, phase, progress)

    def look() -> None:
        out = status(cluster, namespace, "prog")
        if out.get("phase") and (not seen or seen[-1][1:] != (out["phase"], out.get("progress"))):
            seen.append((time.monotonic(), out["phase"], str(out.get("progress"))))

    _watch_until(
        cluster,
        "the slow import to finish",
        lambda: status(cluster, namespace, "prog").get("phase") in ("Ready", "Failed"),
        look,
        timeout=240,
        on_timeout=lambda: dump(cluster, namespace, operator),
    )
    wait_phase(cluster, namespace, "prog", "Ready", operator)
    copying = [(t, p) for t, phase, p in seen if phase == "Copying" and p not in ("N/A", "None")]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(copying)]
    row["observed"] = (
        f"Copying at {', '.join(p for _, p in copying)}; longest gap between moves "
        f"{max(gaps, default=0):.1f} s"
    )
    assert len(copying) >= 2, seen
    assert all(0.0 <= float(p.rstrip("%")) < 100.0 for _, p in copying), seen
    assert max(gaps) <= 10.0, seen
    assert expected_sha256(slow_disk, TARGET) in read_back(
        cluster, namespace, "prog-root", block=False, size=TARGET
    )


def test_busy_registry_is_waited_for_as_told(
    cluster, namespace, operator, front, small_repo, disk, row
):
    row["expected"] = (
        "429 with Retry-After: the pod waits as told, the wait shows in the status message; "
        "then Ready with the right bytes"
    )
    # With a pull secret the operator does not resolve the tag itself (it reads no
    # Secrets), so every busy answer goes to the populator pod.
    auth = base64.b64encode(b"anyone:anything").decode()
    cluster.apply(namespace, pull_secret("anon", {"auths": {front.url: {"auth": auth}}}))
    front.busy, front.busy_status, front.retry_after = 3, 429, 6
    started = time.monotonic()
    cluster.apply(namespace, _target("busy", f"{front.url}/{small_repo}", pullSecretName="anon"))
    messages: set[str] = set()
    _watch_until(
        cluster,
        "the import past a busy registry",
        lambda: status(cluster, namespace, "busy").get("phase") in ("Ready", "Failed"),
        lambda: messages.add(status(cluster, namespace, "busy").get("message", "")),
        timeout=240,
        on_timeout=lambda: dump(cluster, namespace, operator),
    )
    took = time.monotonic() - started
    final = wait_phase(cluster, namespace, "busy", "Ready", operator)
    waits = sorted(m for m in messages if "Retry-After" in m)
    row["observed"] = (
        f"Ready in {took:.0f} s after 3 x 6 s asked; sha256 matches; status said: "
        f"{waits[0][:150] if waits else 'nothing about the wait'}"
    )
    assert front.busy == 0, "the pod met every busy answer"
    assert waits, f"no status message named the wait: {sorted(messages)}"
    assert "answered HTTP 429" in waits[0] and "waiting 6 s" in waits[0]
    assert took >= 18, f"three waits of 6 s were asked for; Ready after {took:.1f} s"
    assert final["claims"]["busy-root"].get("restarts", 0) == 0, "waited in place, no retry"
    assert expected_sha256(disk, TARGET) in read_back(
        cluster, namespace, "busy-root", block=False, size=TARGET
    )


def test_corrupted_blob_fails_naming_the_digest(
    cluster, namespace, operator, front, small_repo, row
):
    row["expected"] = "Failed, message names the digest mismatch; claim never bound"
    front.corrupt = True
    cluster.apply(namespace, _target("corrupt", f"{front.url}/{small_repo}"))

    final = wait_phase(cluster, namespace, "corrupt", "Failed", operator, timeout=180)

    claim_events = _reasons(cluster, namespace, "PersistentVolumeClaim", "corrupt-root")
    row["observed"] = (
        f"Failed: {final['message'][:120]}; claim {pvc_phase(cluster, namespace, 'corrupt-root')}"
        f"; claim events {claim_events}"
    )
    assert "DigestMismatch" in final["message"] and "sha256:" in final["message"], final
    assert "DigestMismatch" in claim_events
    assert pvc_phase(cluster, namespace, "corrupt-root") == "Pending"
    cluster.kubectl("-n", namespace, "delete", "vdi,pvc", "--all", "--wait=true", "--timeout=120s")
    assert_clean(cluster, namespace, operator)


def test_populator_pod_deleted_mid_copy_is_recreated(
    cluster, namespace, operator, front, slow_repo, slow_disk, row
):
    row["expected"] = "a new populator pod is started; Ready; right bytes"
    front.rate = RATE
    cluster.apply(namespace, _target("podgone", f"{front.url}/{slow_repo}"))
    first = _running_pod(cluster, namespace, operator)["metadata"]["uid"]

    cluster.kubectl("-n", namespace, "delete", "pods", "--all", "--wait=false")
    uids: set[str] = {first}
    front.rate = 0.0
    _watch_until(
        cluster,
        "the import to finish with a new pod",
        lambda: status(cluster, namespace, "podgone").get("phase") == "Ready",
        lambda: uids.update(p["metadata"]["uid"] for p in _pods(cluster, namespace)),
        timeout=240,
        on_timeout=lambda: dump(cluster, namespace, operator),
    )
    assert expected_sha256(slow_disk, TARGET) in read_back(
        cluster, namespace, "podgone-root", block=False, size=TARGET
    )
    assert_clean(cluster, namespace, operator)
    row["observed"] = f"Ready, sha256 matches; populator pods seen: {len(uids)}"
    assert len(uids) >= 2


def _state(cluster: Cluster, namespace: str, claim: str) -> dict[str, bool]:
    """Which steps of the population flow have happened for ``claim``."""
    pvc = cluster.get(namespace, "pvc", claim)
    uid = pvc["metadata"]["uid"]
    names = set(cluster.kubectl("-n", namespace, "get", "pvc,pods", "-o", "name").split())
    pvs = json.loads(cluster.kubectl("get", "pv", "-o", "json"))["items"]
    vdi = status(cluster, namespace, claim.removesuffix("-disk"))
    return {
        "finalizer": FINALIZER in (pvc["metadata"].get("finalizers") or []),
        "prime": f"persistentvolumeclaim/prime-{uid}" in names,
        "pod": f"pod/populate-{uid}" in names,
        "pv-patched": any((pv["spec"].get("claimRef") or {}).get("uid") == uid for pv in pvs),
        "ready": (vdi.get("claims", {}).get(claim, {}).get("phase") == "Ready"),
    }


KILL_POINTS = {
    "after-finalizer": lambda s: s["finalizer"],
    "after-prime-pvc": lambda s: s["prime"],
    "after-pod": lambda s: s["pod"],
    "after-pv-patch": lambda s: s["pv-patched"],
    "during-cleanup": lambda s: s["ready"] and s["finalizer"],
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_operator_sigkilled_at_each_step_converges(
    cluster, namespace, operator, registry, small_repo, disk, point, row
):
    row["case"] = f"operator SIGKILL {point}"
    row["expected"] = (
        "converges: Ready, right bytes, one pod, no prime PVC/pod/PV left, finalizer gone"
    )
    name = "kill"
    cluster.apply(namespace, vmdiskimage(name, f"{registry.url}/{small_repo}", f"{name}-disk"))
    cluster.apply(namespace, populated_claim(f"{name}-disk", name, FS))
    seen: dict[str, bool] = {}

    def reached() -> bool:
        seen.update(_state(cluster, namespace, f"{name}-disk"))
        return KILL_POINTS[point](seen)

    cluster.wait_for(
        f"the flow to reach {point}",
        reached,
        timeout=180,
        interval=0.1,
        on_timeout=lambda: dump(cluster, namespace, operator),
    )
    operator.kill()
    at_kill = ", ".join(step for step, done in seen.items() if done)
    uids: set[str] = set()
    try:
        time.sleep(2)
    finally:
        operator.start()

    _watch_until(
        cluster,
        "the import to converge after the restart",
        lambda: (
            status(cluster, namespace, name).get("claims", {}).get(f"{name}-disk", {}).get("phase")
            == "Ready"
        ),
        lambda: uids.update(p["metadata"]["uid"] for p in _pods(cluster, namespace)),
        timeout=240,
        on_timeout=lambda: dump(cluster, namespace, operator),
    )
    wait_bound(cluster, namespace, f"{name}-disk", operator)
    assert expected_sha256(disk, TARGET) in read_back(
        cluster, namespace, f"{name}-disk", block=False, size=TARGET
    )
    assert_clean(cluster, namespace, operator)
    finalizers = claim_finalizers(cluster, namespace, f"{name}-disk")
    row["observed"] = (
        f"killed with [{at_kill}] done; converged Ready, sha256 matches; populator pods "
        f"seen after restart {len(uids)}; leftovers none; finalizer "
        f"{'kept' if FINALIZER in finalizers else 'gone'}"
    )
    assert len(uids) <= 1, "no second populator pod"
    assert FINALIZER not in finalizers


def test_vmdiskimage_deleted_mid_import_cleans_up(
    cluster, namespace, operator, front, slow_repo, row
):
    row["expected"] = "pod and prime PVC deleted, VMDiskImage gone, ImportAborted on the claim"
    front.rate = RATE
    cluster.apply(namespace, vmdiskimage("vdigone", f"{front.url}/{slow_repo}", "vdigone-disk"))
    cluster.apply(namespace, populated_claim("vdigone-disk", "vdigone", FS))
    _running_pod(cluster, namespace, operator)

    cluster.kubectl("-n", namespace, "delete", "vdi", "vdigone", "--wait=true", "--timeout=120s")

    assert_clean(cluster, namespace, operator)
    claim_events = _reasons(cluster, namespace, "PersistentVolumeClaim", "vdigone-disk")
    phase = pvc_phase(cluster, namespace, "vdigone-disk")
    row["observed"] = (
        f"VMDiskImage deleted; no pod or prime PVC left; claim {phase}; events {claim_events}"
    )
    assert "ImportAborted" in claim_events
    assert phase == "Pending"


def test_claim_deleted_mid_copy_cleans_up(cluster, namespace, operator, front, slow_repo, row):
    row["expected"] = "pod and prime PVC deleted, claim leaves the status, ImportAborted event"
    front.rate = RATE
    cluster.apply(namespace, vmdiskimage("pvcgone", f"{front.url}/{slow_repo}", "pvcgone-disk"))
    cluster.apply(namespace, populated_claim("pvcgone-disk", "pvcgone", FS))
    _running_pod(cluster, namespace, operator)

    cluster.kubectl(
        "-n", namespace, "delete", "pvc", "pvcgone-disk", "--wait=true", "--timeout=120s"
    )

    assert_clean(cluster, namespace, operator)
    # The finalizer run drops the claim from the status after the cleanup.
    cluster.wait_for(
        "the claim to leave the VMDiskImage status",
        lambda: "pvcgone-disk" not in status(cluster, namespace, "pvcgone").get("claims", {}),
        timeout=60,
        on_timeout=lambda: dump(cluster, namespace, operator),
    )
    claims = status(cluster, namespace, "pvcgone").get("claims", {})
    vdi_events = _reasons(cluster, namespace, "VMDiskImage", "pvcgone")
    row["observed"] = (
        f"claim deleted; nothing left; status claims {sorted(claims)}; events {vdi_events}"
    )
    assert "pvcgone-disk" not in claims
    assert "ImportAborted" in vdi_events


def test_twenty_imports_with_an_operator_restart(
    cluster, namespace, operator, registry, small_repo, disk, tmp_path, row
):
    row["expected"] = "20 claims of two VMDiskImages all Ready and right after a restart"
    other = tmp_path / "other.raw"
    make_disk(other, DISK_SIZE, ((0, 2 * MIB), (20 * MIB, MIB)), seed=12)
    other_repo = _publish(registry, other, "hard/other:1", push.ARTIFACT, "zstd")
    sources = {"one": (small_repo, disk), "two": (other_repo, other)}
    claims = {f"{vdi}-{i}": vdi for vdi in sources for i in range(10)}
    started = time.monotonic()
    for vdi, (repo, _) in sources.items():
        cluster.apply(namespace, vmdiskimage(vdi, f"{registry.url}/{repo}", f"{vdi}-0"))
    cluster.apply(
        namespace, *(populated_claim(claim, vdi, FS, size="32Mi") for claim, vdi in claims.items())
    )

    def ready() -> int:
        return sum(
            1
            for vdi in sources
            for c in status(cluster, namespace, vdi).get("claims", {}).values()
            if c.get("phase") == "Ready"
        )

    cluster.wait_for("a few imports to be done", lambda: ready() >= 3, timeout=300)
    operator.kill()
    operator.start()
    cluster.wait_for(
        "all 20 imports to be Ready",
        lambda: ready() == 20,
        timeout=600,
        on_timeout=lambda: dump(cluster, namespace, operator),
    )
    for claim in claims:
        wait_bound(cluster, namespace, claim, operator)
    elapsed = time.monotonic() - started
    # One pod reads all 20 volumes back.
    script = "; ".join(
        f"echo {c} $(head -c {32 * MIB} /v/{c}/disk.img | sha256sum)" for c in claims
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "verify-all"},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "main",
                    "image": cluster.smoke_image,
                    "imagePullPolicy": "Never",
                    "command": ["/bin/sh", "-ec", script],
                    "volumeMounts": [{"name": c, "mountPath": f"/v/{c}"} for c in claims],
                }
            ],
            "volumes": [{"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims],
        },
    }
    cluster.apply(namespace, pod)
    cluster.wait_for(
        "the read-back pod to finish",
        lambda: pod_phase(cluster, namespace, "verify-all") in ("Succeeded", "Failed"),
        timeout=180,
    )
    logs = cluster.kubectl("-n", namespace, "logs", "verify-all")
    wrong = [
        c for c, vdi in claims.items()
        if f"{c} {expected_sha256(sources[vdi][1], 32 * MIB)}" not in logs
    ]  # fmt: skip
    assert_clean(cluster, namespace, operator)
    row["observed"] = (
        f"20/20 Ready and bound in {elapsed:.0f} s with a restart; wrong data: {wrong or 'none'}"
    )
    assert wrong == []


def test_target_volume_full_fails_named_as_such(
    cluster, namespace, operator, registry, small_repo, row
):
    row["expected"] = "Failed with TargetFull; the claim is not bound"
    provisioner = json.loads(cluster.kubectl("get", "storageclass", FS, "-o", "json"))[
        "provisioner"
    ]
    tiny = f"full-{namespace}"[:63]
    cluster.kubectl(
        "apply", "-f", "-",
        stdin=json.dumps({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": tiny},
            "provisioner": provisioner,
            # The volume holds 2 MiB whatever the claim asks: less than the disk's data.
            "parameters": {"realCapacity": str(2 * MIB)},
            "volumeBindingMode": "Immediate",
        }),
    )  # fmt: skip
    try:
        cluster.apply(namespace, vmdiskimage("full", f"{registry.url}/{small_repo}", "full-disk"))
        cluster.apply(namespace, populated_claim("full-disk", "full", tiny))

        final = wait_phase(cluster, namespace, "full", "Failed", operator, timeout=180)

        claim_events = _reasons(cluster, namespace, "PersistentVolumeClaim", "full-disk")
        phase = pvc_phase(cluster, namespace, "full-disk")
        row["observed"] = f"Failed: {final['message'][:140]}; claim {phase}; events {claim_events}"
        assert "TargetFull" in final["message"], final
        assert "TargetFull" in claim_events
        assert phase == "Pending"
        cluster.kubectl("-n", namespace, "delete", "vdi,pvc", "--all", "--wait=true")
        assert_clean(cluster, namespace, operator)
    finally:
        cluster.kubectl("delete", "storageclass", tiny, check=False)


def test_claims_made_while_the_operator_is_down_are_populated(
    cluster, namespace, operator, registry, small_repo, disk, row
):
    row["expected"] = (
        "no admission webhook: creating a claim never waits on the operator; "
        "claims made while it is down are populated when it is back"
    )
    operator.stop()
    try:
        started = time.monotonic()
        cluster.apply(namespace, vmdiskimage("down", f"{registry.url}/{small_repo}", "down-disk"))
        cluster.apply(namespace, populated_claim("down-disk", "down", FS))
        created_in = time.monotonic() - started
        webhooks = cluster.kubectl(
            "get", "mutatingwebhookconfigurations,validatingwebhookconfigurations", "-o", "name"
        )
    finally:
        operator.start()
    wait_phase(cluster, namespace, "down", "Ready", operator)
    wait_bound(cluster, namespace, "down-disk", operator)
    assert expected_sha256(disk, TARGET) in read_back(
        cluster, namespace, "down-disk", block=False, size=TARGET
    )
    row["observed"] = (
        f"created in {created_in:.1f} s with the operator down; webhooks: "
        f"{webhooks.split() or 'none'}; Ready after it came back"
    )
    assert "vmdiskimage" not in webhooks


# -- bad input -----------------------------------------------------------------------------------


def _refused_by_the_api(cluster: Cluster, namespace: str, manifest: dict[str, Any]) -> str:
    proc = subprocess.run(
        ["kubectl", "--kubeconfig", cluster.kubeconfig, "-n", namespace, "apply", "-f", "-"],
        input=json.dumps(manifest),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0, f"the API server accepted {manifest}"
    return proc.stderr.strip()


@pytest.mark.parametrize(
    ("case", "spec", "field"),
    [
        pytest.param(
            "malformed image reference", {"sourceImage": "Registry:5000//Disks:latest"},
            "spec.sourceImage", id="malformed-reference",
        ),
        pytest.param(
            "targetSize not a quantity", {"targetSize": "lots"}, "spec.targetSize",
            id="targetsize-not-quantity",
        ),
        pytest.param(
            "pull secret in another namespace", {"pullSecretName": "other-ns/pull"},
            "spec.pullSecretName", id="pull-secret-other-namespace",
        ),
    ],
)  # fmt: skip
def test_bad_spec_is_refused_by_the_api_server(cluster, namespace, crd, case, spec, field, row):
    row["case"] = f"bad input: {case}"
    row["expected"] = f"refused when applied, naming {field}"
    manifest = vmdiskimage("bad", "registry.example:5000/disks/x:1", "bad-root", **spec)
    message = _refused_by_the_api(cluster, namespace, manifest)
    row["observed"] = message.splitlines()[-1][:200]
    assert field in message, message


def _tar_gz(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    import gzip

    return gzip.compress(tar_layer(entries), compresslevel=1)


def _entry(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = ""):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname, info.uid, info.gid = kind, size, link, 107, 107
    return info


@pytest.fixture(scope="module")
def hostile_sources(
    cluster: Cluster,
    registry: Registry,
    basic_registry: Registry,
    tls_registry: Registry,
    front_server: FaultyFront,
    disk: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[str, dict[str, Any], str]]:
    """case -> (sourceImage, extra spec, what the Failed message must name)."""
    from tests.support import hostile
    from tests.support.images import push_crafted

    work = tmp_path_factory.mktemp("hostile")
    gz = "application/vnd.oci.image.layer.v1.tar+gzip"
    crafted = {
        "disk is a symlink": [(_entry("disk/disk.img", tarfile.SYMTYPE, link="/etc/shadow"), None)],
        "disk is a hard link": [
            (_entry("disk/disk.img", tarfile.LNKTYPE, link="etc/passwd"), None)
        ],
        "disk path climbs out (../)": [(_entry("../disk/disk.img", size=4), b"evil")],
    }
    sources: dict[str, tuple[str, dict[str, Any], str]] = {}
    with registry.client() as client:
        for i, (case, entries) in enumerate(crafted.items()):
            push_crafted(client, "bad/tar", f"t{i}", [(_tar_gz(entries), gz, None)])
            sources[case] = (f"{registry.url}/bad/tar:t{i}", {}, "UnsafeDiskEntry")
        # A layer declaring 256 MiB of zeros (about 256 KiB gzipped) for a 64Mi target.
        bomb = hostile.gzip_bytes(
            tar_layer([(_entry("disk/disk.img", size=256 * MIB), bytes(256 * MIB))])
        )
        push_crafted(client, "bad/bomb", "1", [(bomb, gz, None)])
        sources["decompression bomb"] = (f"{registry.url}/bad/bomb:1", {}, "TargetTooSmall")
        push_crafted(client, "bad/empty", "1", [])
        sources["empty layer list"] = (f"{registry.url}/bad/empty:1", {}, "DiskNotFound")
        # Bytes that say qcow2 version 3 and are not: the header length is 0. (Fixed
        # bytes: random ones would name a backing file now and then, a different reason.)
        liar = b"QFI\xfb" + b"\x00\x00\x00\x03" + bytes(4096)
        # A LUKS volume: a format the importer refuses by name.
        luks = b"LUKS\xba\xbe\x00\x01" + bytes(4096)
        for repo, data in (("bad/liar", liar), ("bad/luks", luks)):
            push_crafted(client, repo, "1", [
                (_tar_gz([(_entry("disk/disk.img", size=len(data)), data)]), gz, None),
            ])  # fmt: skip
        sources["lying disk format"] = (f"{registry.url}/bad/liar:1", {}, "CorruptImage")
        sources["unsupported disk format"] = (
            f"{registry.url}/bad/luks:1",
            {},
            "UnsupportedDiskFormat",
        )
    backing = work / "backing.qcow2"
    to_qcow2(disk, backing)
    child = work / "child.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(backing), str(child)],
        check=True,
    )
    # `vmdiskimage push` refuses it too: the layer is made by hand.
    child_bytes = child.read_bytes()
    with registry.client() as client:
        push_crafted(client, "bad/backing", "1", [
            (_tar_gz([(_entry("disk/disk.img", size=len(child_bytes)), child_bytes)]), gz, None),
        ])  # fmt: skip
    sources["qcow2 with a backing file"] = (f"{registry.url}/bad/backing:1", {}, "BackingFile")
    sources["tag that does not exist"] = (f"{registry.url}/bad/nothing:1", {}, "not found")
    sources["registry that does not answer"] = (
        f"{cluster.bridge_ip}:{free_port(cluster.bridge_ip)}/disks/x:1",
        {},
        "unreachable",
    )
    _publish(basic_registry, disk, "bad/private:1", push.CONTAINER_DISK, "gzip")
    sources["denied credentials"] = (
        f"{basic_registry.url}/bad/private:1",
        {"pullSecretName": "pull"},
        "AuthenticationFailed",
    )
    _publish(tls_registry, disk, "bad/untrusted:1", push.CONTAINER_DISK, "gzip")
    sources["registry certificate not trusted"] = (
        f"{tls_registry.url}/bad/untrusted:1",
        {"insecureRegistry": False},  # HTTPS, verified; no caBundleConfigMap
        "TLSVerificationFailed",
    )
    # Checked against the cluster before the image is looked at.
    sources["storage class that does not exist"] = (
        f"{registry.url}/hard/small:1",
        {"targetPVC": {"storageClass": "no-such-class"}},
        "names no StorageClass",
    )
    sources["CA bundle ConfigMap that does not exist"] = (
        f"{tls_registry.url}/bad/untrusted:1",
        {"insecureRegistry": False, "caBundleConfigMap": {"name": "no-such-ca"}},
        "ConfigMap no-such-ca",
    )
    sources["targetSize below the virtual size"] = (
        f"{registry.url}/hard/small:1",
        {"targetSize": "8Mi"},
        "TargetTooSmall",
    )
    sources["manifest larger than the limit"] = (
        f"{front_server.url}/bad/huge:1",
        {},
        "UnsupportedManifest",
    )
    return sources


HOSTILE_CASES = [
    "tag that does not exist",
    "registry that does not answer",
    "denied credentials",
    "registry certificate not trusted",
    "storage class that does not exist",
    "CA bundle ConfigMap that does not exist",
    "targetSize below the virtual size",
    "lying disk format",
    "unsupported disk format",
    "qcow2 with a backing file",
    "disk is a symlink",
    "disk is a hard link",
    "disk path climbs out (../)",
    "decompression bomb",
    "manifest larger than the limit",
    "empty layer list",
]


def test_bad_input_fails_clearly_and_harms_nothing_else(
    cluster, namespace, operator, registry, basic_registry, front, small_repo, disk,
    hostile_sources, row,
):  # fmt: skip
    row["case"] = "bad input: all at once beside a good import"
    row["expected"] = (
        "each Failed with a message naming the cause and a Warning event; the good one Ready"
    )
    # A manifest of 5 MiB, served by the front (the registry itself refuses to store one).
    huge = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {}, "layers": [], "annotations": {"pad": "x" * (5 * MIB)},
    }).encode()  # fmt: skip
    front.answers["/v2/bad/huge/manifests/1"] = (
        200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, huge,
    )  # fmt: skip
    cluster.apply(namespace, pull_secret("pull", basic_registry.dockerconfigjson(password="wrong")))
    names = {case: f"bad-{i}" for i, case in enumerate(HOSTILE_CASES)}
    for case, name in names.items():
        source, spec, _ = hostile_sources[case]
        cluster.apply(namespace, _target(name, source, **spec))
    cluster.apply(namespace, _target("good", f"{registry.url}/{small_repo}"))

    def phases() -> dict[str, str]:
        return {case: status(cluster, namespace, n).get("phase", "") for case, n in names.items()}

    cluster.wait_for(
        "every bad VMDiskImage to fail",
        lambda: all(p == "Failed" for p in phases().values()),
        timeout=420,
        on_timeout=lambda: json.dumps(phases(), indent=1) + dump(cluster, namespace, operator),
    )
    wait_phase(cluster, namespace, "good", "Ready", operator)
    assert expected_sha256(disk, TARGET) in read_back(
        cluster, namespace, "good-root", block=False, size=TARGET
    )
    lines, problems = [], []
    for case, name in names.items():
        final = status(cluster, namespace, name)
        message = final.get("message", "")
        warnings = [
            e["reason"]
            for e in json.loads(cluster.kubectl("-n", namespace, "get", "events", "-o", "json"))[
                "items"
            ]
            if e["type"] == "Warning" and e["involvedObject"]["name"] in (name, f"{name}-root")
        ]
        want = hostile_sources[case][2]
        lines.append(f"{case}: {message[:110]} [{', '.join(sorted(set(warnings)))}]")
        if want.lower() not in message.lower() or not warnings:
            problems.append(f"{case}: wanted {want!r} and a Warning, got {message!r} {warnings}")
    row["observed"] = " | ".join(lines)
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    with TABLE.open("a") as table:
        for line in lines:
            case, _, observed = line.partition(": ")
            table.write(json.dumps({
                "case": f"bad input: {case}", "expected": "Failed, cause named, Warning event",
                "observed": observed,
                "result": "FAIL" if any(p.startswith(case + ":") for p in problems) else "pass",
            }) + "\n")  # fmt: skip
    assert problems == [], "\n".join(problems)


# -- least privilege ------------------------------------------------------------------------------


@pytest.mark.parametrize("block", [False, True], ids=["filesystem", "block"])
def test_imports_in_a_restricted_namespace(
    cluster, namespace, operator, registry, small_repo, disk, block, row
):
    row["case"] = f"restricted Pod Security namespace, {'Block' if block else 'Filesystem'}"
    row["expected"] = "the populator pod is admitted and locked down; Ready; right bytes"
    cluster.kubectl(
        "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )  # fmt: skip
    cluster.apply(namespace, vmdiskimage("ps", f"{registry.url}/{small_repo}", "ps-disk"))
    cluster.apply(namespace, populated_claim("ps-disk", "ps", FS, block=block, size="64Mi"))
    cluster.wait_for(
        "the populator pod to be admitted",
        lambda: (
            _pods(cluster, namespace) != []
            or status(cluster, namespace, "ps").get("phase") == "Ready"
        ),
        timeout=120,
        on_timeout=lambda: dump(cluster, namespace, operator),
    )
    pods = _pods(cluster, namespace)
    spec = pods[0]["spec"] if pods else None
    wait_phase(cluster, namespace, "ps", "Ready", operator)
    wait_bound(cluster, namespace, "ps-disk", operator)
    # The read-back pod is the test's own, not restricted: lift the policy for it.
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce-")
    size = DISK_SIZE if block else TARGET
    expected = expected_sha256(disk, size)
    assert expected in read_back(cluster, namespace, "ps-disk", block=block, size=size)
    assert spec is not None, "the pod was seen"
    pod_sc, (container,) = spec["securityContext"], spec["containers"]
    sc = container["securityContext"]
    checks = {
        "non-root": pod_sc.get("runAsNonRoot") is True,
        "no token": spec.get("automountServiceAccountToken") is False,
        "read-only root": sc.get("readOnlyRootFilesystem") is True,
        "caps dropped": sc.get("capabilities", {}).get("drop") == ["ALL"],
        "no escalation": sc.get("allowPrivilegeEscalation") is False,
        "seccomp": pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
        "requests+limits": bool(container["resources"].get("requests"))
        and bool(container["resources"].get("limits")),
    }
    row["observed"] = "admitted; Ready, sha256 matches; " + ", ".join(
        f"{k} {'yes' if v else 'NO'}" for k, v in checks.items()
    )
    assert all(checks.values()), checks
    assert_clean(cluster, namespace, operator)


SCC_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "securitycontextconstraints.security.openshift.io"},
    "spec": {
        "group": "security.openshift.io",
        "scope": "Cluster",
        "names": {
            "kind": "SecurityContextConstraints",
            "listKind": "SecurityContextConstraintsList",
            "plural": "securitycontextconstraints",
            "singular": "securitycontextconstraints",
        },
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "schema": {"openAPIV3Schema": {
                "type": "object", "x-kubernetes-preserve-unknown-fields": True,
            }},
        }],
    },
}  # fmt: skip


def test_no_fixed_uid_where_openshift_assigns_one(
    cluster, namespace, operator, registry, small_repo, row
):
    """With OpenShift's SCC API served, the populator pod leaves UID and fsGroup to it."""
    row["expected"] = (
        "the cluster serves security.openshift.io SCCs: the populator pod sets no runAsUser, "
        "runAsGroup or fsGroup (restricted-v2 assigns them from the namespace's range)"
    )
    cluster.apply(namespace, SCC_CRD)  # cluster-scoped: the namespace is ignored
    try:
        cluster.wait_for(
            "the SCC API to be served",
            lambda: (
                "securitycontextconstraints"
                in cluster.kubectl("get", "--raw", "/apis/security.openshift.io/v1", check=False)
            ),
            timeout=60,
        )
        cluster.apply(namespace, vmdiskimage("oshift", f"{registry.url}/{small_repo}", "oshift"))
        cluster.apply(namespace, populated_claim("oshift", "oshift", FS, size="64Mi"))
        cluster.wait_for(
            "the populator pod",
            lambda: _pods(cluster, namespace) != [],
            timeout=120,
            on_timeout=lambda: dump(cluster, namespace, operator),
        )
        spec = _pods(cluster, namespace)[0]["spec"]
    finally:
        cluster.kubectl("delete", "crd", SCC_CRD["metadata"]["name"], "--wait=true")
    pod_sc = spec["securityContext"]
    set_ids = [k for k in ("runAsUser", "runAsGroup", "fsGroup") if k in pod_sc]
    set_ids += [f"container {k}" for k in ("runAsUser", "runAsGroup")
                if k in spec["containers"][0]["securityContext"]]  # fmt: skip
    row["observed"] = (
        f"pod securityContext {json.dumps(pod_sc, sort_keys=True)}; fixed ids: {set_ids or 'none'}"
    )
    assert set_ids == [], pod_sc
    assert pod_sc.get("runAsNonRoot") is True
    cluster.kubectl("-n", namespace, "delete", "vdi,pvc", "--all", "--wait=true", "--timeout=120s")
    assert_clean(cluster, namespace, operator)


def _device_ownership(value: bool) -> None:
    subprocess.run(
        [str(REPO / "hack/cluster/cluster.sh"), "device-ownership", str(value).lower()],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip


def test_block_volume_on_a_node_without_device_ownership(
    cluster, namespace, operator, registry, small_repo, row
):
    """containerd's default: a Block volume's device node stays root's, the pod is not."""
    row["expected"] = (
        "device_ownership_from_security_context = false: Failed at once (no retry), the "
        "message names the node setting, a Warning; the claim stays unbound"
    )
    _device_ownership(False)
    try:
        started = time.monotonic()
        cluster.apply(namespace, vmdiskimage("noown", f"{registry.url}/{small_repo}", "noown"))
        cluster.apply(namespace, populated_claim("noown", "noown", FS, block=True, size="64Mi"))
        final = wait_phase(cluster, namespace, "noown", "Failed", operator, timeout=180)
        took = time.monotonic() - started
    finally:
        _device_ownership(True)
    claim_events = _reasons(cluster, namespace, "PersistentVolumeClaim", "noown")
    restarts = final.get("claims", {}).get("noown", {}).get("restarts", 0)
    row["observed"] = (
        f"Failed after {took:.0f} s, {restarts} retries: {final['message'][:160]}; claim "
        f"{pvc_phase(cluster, namespace, 'noown')}; claim events {claim_events}"
    )
    assert "TargetNotWritable" in final["message"], final
    assert "device_ownership_from_security_context" in final["message"], final
    assert restarts == 0
    assert "TargetNotWritable" in claim_events
    assert pvc_phase(cluster, namespace, "noown") == "Pending"
    cluster.kubectl("-n", namespace, "delete", "vdi,pvc", "--all", "--wait=true", "--timeout=120s")
    assert_clean(cluster, namespace, operator)


def test_no_credential_in_logs_events_or_status(
    cluster, namespace, operator, basic_registry, disk, row
):
    row["expected"] = "the pull secret's password appears in no log, event, status or message"
    _publish(basic_registry, disk, "cred/private:1", push.CONTAINER_DISK, "gzip")
    secret = basic_registry.password
    assert secret
    cluster.apply(
        namespace, pull_secret("pull", basic_registry.dockerconfigjson(password="x" + secret))
    )
    cluster.apply(
        namespace,
        _target("cred", f"{basic_registry.url}/cred/private:1", pullSecretName="pull"),
    )
    wait_phase(cluster, namespace, "cred", "Failed", operator)
    pods = _pods(cluster, namespace)
    texts = {
        "VMDiskImage": cluster.kubectl("-n", namespace, "get", "vdi", "-o", "json"),
        "events": cluster.kubectl("-n", namespace, "get", "events", "-o", "json"),
        "pod logs and termination": "".join(
            cluster.kubectl("-n", namespace, "logs", p["metadata"]["name"], check=False)
            + json.dumps(p["status"])
            for p in pods
        ),
        "operator log": operator.log_path.read_text(errors="replace"),
    }
    encoded = basic_registry.dockerconfigjson(password="x" + secret)["auths"]
    auth = next(iter(encoded.values()))["auth"]
    leaked = [where for where, text in texts.items() if secret in text or auth in text]
    row["observed"] = f"looked in {', '.join(texts)}; password found in: {leaked or 'none'}"
    assert leaked == []
    assert pods, "a populator pod ran and failed"
