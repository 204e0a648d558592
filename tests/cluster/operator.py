"""The operator under test: hack/run-operator.sh (the real ansible-operator binary with
this checkout's roles) run as a process on the host against the local node, and helpers
to drive VMDiskImages and claims through it."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.cluster.kube import REPO, Cluster, pvc_manifest, run_pod

RUN_OPERATOR = REPO / "hack" / "run-operator.sh"
HEALTH_ADDRESS = "127.0.0.1:16789"
METRICS_ADDRESS = "127.0.0.1:18383"
GIB = 1 << 30
MIB = 1 << 20


class Operator:
    """One run of hack/run-operator.sh in its own process group, logging to a file."""

    def __init__(self, cluster: Cluster, log_dir: Path, args: tuple[str, ...] = ()) -> None:
        self.cluster = cluster
        self.log_dir = log_dir
        self.args = args  # ansible-operator run flags, such as --ansible-args
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"operator-{self.starts}.log"

    def start(self, timeout: float = 60) -> None:
        """Start the operator and wait until its health endpoint answers."""
        try:  # another operator (a run killed before its cleanup) would answer for this one
            with urllib.request.urlopen(f"http://{HEALTH_ADDRESS}/readyz", timeout=2):
                raise AssertionError(
                    f"an operator already answers on {HEALTH_ADDRESS}: stop it first "
                    "(pgrep -af 'ansible-operator run')"
                )
        except OSError:
            pass
        self.starts += 1
        env = {
            **os.environ,
            "KUBECONFIG": self.cluster.kubeconfig,
            "ANSIBLE_OPERATOR": self.cluster.env["VMDI_ANSIBLE_OPERATOR"],
            "HEALTH_ADDRESS": HEALTH_ADDRESS,
            "METRICS_ADDRESS": METRICS_ADDRESS,
        }
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                ["bash", str(RUN_OPERATOR), *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the operator exited:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://{HEALTH_ADDRESS}/readyz", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"the operator did not become ready:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the operator and everything it started (ansible-runner, the marker)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def stop(self) -> None:
        """Stop the operator as Ctrl-C would, then make sure nothing of it is left."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
        if self.process:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def log_tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def vmdiskimage(name: str, source: str, target: str, **spec: Any) -> dict[str, Any]:
    """A VMDiskImage manifest; spec keys override the defaults."""
    body: dict[str, Any] = {
        "sourceImage": source,
        "targetPVC": {"name": target},
        "targetSize": "64Mi",
        "insecureRegistry": True,
    }
    body.update(spec)
    return {
        "apiVersion": "vm.example.com/v1alpha1",
        "kind": "VMDiskImage",
        "metadata": {"name": name},
        "spec": body,
    }


def populated_claim(
    name: str, vmdiskimage_name: str, storage_class: str, *, block: bool = False, size: str = "80Mi"
) -> dict[str, Any]:
    """A user-written claim with nothing but a dataSourceRef to the VMDiskImage."""
    claim = pvc_manifest(name, storage_class, block=block, size=size)
    claim["spec"]["dataSourceRef"] = {
        "apiGroup": "vm.example.com",
        "kind": "VMDiskImage",
        "name": vmdiskimage_name,
    }
    return claim


def pull_secret(name: str, config: dict[str, Any]) -> dict[str, Any]:
    """A kubernetes.io/dockerconfigjson Secret."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }


def status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """The VMDiskImage's status ({} before the operator wrote one)."""
    out = cluster.kubectl("-n", namespace, "get", "vmdiskimage", name, "-o", "json", check=False)
    return json.loads(out).get("status", {}) if out else {}


def events(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    """Events of the namespace."""
    return json.loads(cluster.kubectl("-n", namespace, "get", "events", "-o", "json"))["items"]


def event_reasons(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, str]:
    """reason -> message of the events about one object."""
    return {
        e["reason"]: e.get("message", "")
        for e in events(cluster, namespace)
        if e["involvedObject"]["kind"] == kind and e["involvedObject"]["name"] == name
    }


def leftovers(cluster: Cluster, namespace: str) -> list[str]:
    """Prime PVCs, populator pods and PVs of this namespace not bound to a live claim."""
    found = []
    pvcs = json.loads(cluster.kubectl("-n", namespace, "get", "pvc", "-o", "json"))["items"]
    pods = json.loads(cluster.kubectl("-n", namespace, "get", "pods", "-o", "json"))["items"]
    found += [
        f"pvc/{p['metadata']['name']}" for p in pvcs if p["metadata"]["name"].startswith("prime-")
    ]
    found += [
        f"pod/{p['metadata']['name']}"
        for p in pods
        if p["metadata"]["name"].startswith("populate-")
    ]
    live = {p["metadata"]["uid"] for p in pvcs}
    for pv in json.loads(cluster.kubectl("get", "pv", "-o", "json"))["items"]:
        ref = pv["spec"].get("claimRef") or {}
        if ref.get("namespace") == namespace and (
            ref.get("uid") not in live or pv["status"].get("phase") != "Bound"
        ):
            phase = pv["status"].get("phase")
            found.append(f"pv/{pv['metadata']['name']} ({phase}, claim {ref.get('name')})")
    return found


def claim_finalizers(cluster: Cluster, namespace: str, name: str) -> list[str]:
    return cluster.get(namespace, "pvc", name)["metadata"].get("finalizers", [])


def orphan_volumes(cluster: Cluster) -> list[str]:
    """PVs whose claim lived in a test namespace that no longer exists."""
    namespaces = set(cluster.kubectl("get", "namespaces", "-o", "name").split())
    found = []
    for pv in json.loads(cluster.kubectl("get", "pv", "-o", "json"))["items"]:
        ref = pv["spec"].get("claimRef") or {}
        if ref.get("namespace", "").startswith("t-") and (
            f"namespace/{ref['namespace']}" not in namespaces
        ):
            found.append(
                f"pv/{pv['metadata']['name']} (claim {ref['namespace']}/{ref.get('name')})"
            )
    return found


# -- waiting for an import and checking what it left -----------------------------------


def expected_sha256(disk: Path, size: int) -> str:
    """The disk followed by zeros up to size: what a grown import holds."""
    digest = hashlib.sha256(disk.read_bytes())
    digest.update(bytes(size - disk.stat().st_size))
    return digest.hexdigest()


def dump(cluster: Cluster, namespace: str, operator: Operator) -> str:
    return (
        cluster.kubectl("-n", namespace, "get", "vmdiskimage,pvc,pods", "-o", "yaml", check=False)
        + cluster.describe(namespace)
        + "\n--- operator log ---\n"
        + operator.log_tail(150)
    )


def wait_phase(
    cluster: Cluster,
    namespace: str,
    name: str,
    phase: str,
    operator: Operator,
    timeout: float = 180,
) -> dict:
    cluster.wait_for(
        f"VMDiskImage {name} to reach {phase}",
        lambda: status(cluster, namespace, name).get("phase") == phase,
        timeout=timeout,
        on_timeout=lambda: dump(cluster, namespace, operator),
    )
    return status(cluster, namespace, name)


def wait_bound(cluster: Cluster, namespace: str, claim: str, operator: Operator) -> None:
    cluster.wait_for(
        f"PVC {claim} to be Bound with the populate finalizer gone",
        lambda: (
            cluster.get(namespace, "pvc", claim)["status"].get("phase") == "Bound"
            and "vm.example.com/populate" not in claim_finalizers(cluster, namespace, claim)
        ),
        timeout=180,
        on_timeout=lambda: dump(cluster, namespace, operator),
    )


def assert_clean(cluster: Cluster, namespace: str, operator: Operator) -> None:
    cluster.wait_for(
        "prime PVCs, populator pods and orphan PVs to be gone",
        lambda: leftovers(cluster, namespace) == [],
        timeout=60,
        on_timeout=lambda: f"{leftovers(cluster, namespace)}\n{dump(cluster, namespace, operator)}",
    )


def read_back(cluster: Cluster, namespace: str, claim: str, *, block: bool, size: int) -> str:
    """sha256 of what the claim holds, read by a pod (the first size bytes of a device)."""
    if block:
        script = f"head -c {size} /dev/xvda | sha256sum"
    else:
        script = "stat -c 'size=%s' /data/disk.img; sha256sum < /data/disk.img"
    return run_pod(cluster, namespace, f"verify-{claim}", script, pvc=claim, block=block)
