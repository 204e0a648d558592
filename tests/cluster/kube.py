"""Helpers for the cluster tier: a kubectl wrapper and pod/PVC builders."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "hack" / "cluster" / "cluster.sh"


def cluster_env() -> dict[str, str]:
    """The `export NAME=value` lines of `cluster.sh env`, as a dict."""
    out = subprocess.run(
        ["bash", str(CLUSTER_SH), "env"], check=True, capture_output=True, text=True
    ).stdout
    env = {}
    for line in out.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value
    return env


@dataclass
class Cluster:
    """The running node: kubeconfig, addresses and a kubectl wrapper."""

    kubeconfig: str
    bridge_ip: str
    smoke_image: str
    env: dict[str, str]

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        """Run kubectl against the node and return its stdout."""
        proc = subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def apply(self, namespace: str, *objects: dict[str, Any]) -> None:
        """Create or update objects in namespace."""
        doc = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
        self.kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(doc))

    def get(self, namespace: str, kind: str, name: str) -> dict[str, Any]:
        """One object as a dict."""
        return json.loads(self.kubectl("-n", namespace, "get", kind, name, "-o", "json"))

    def wait_for(
        self,
        what: str,
        predicate: Callable[[], bool],
        timeout: float = 180,
        on_timeout: Callable[[], str] | None = None,
        interval: float = 1,
    ) -> None:
        """Poll predicate until true; on timeout fail with what, plus on_timeout's dump."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(interval)
        detail = on_timeout() if on_timeout else ""
        pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{detail}")

    def describe(self, namespace: str) -> str:
        """Everything in namespace, for a failure message."""
        return self.kubectl("-n", namespace, "describe", "pods,pvc", check=False) + self.kubectl(
            "-n", namespace, "get", "events", check=False
        )


def pod_phase(cluster: Cluster, namespace: str, name: str) -> str:
    """The pod's phase, or '' while it does not exist."""
    out = cluster.kubectl(
        "-n", namespace, "get", "pod", name, "-o", "jsonpath={.status.phase}", check=False
    )
    return out.strip()


def run_pod(
    cluster: Cluster,
    namespace: str,
    name: str,
    script: str,
    *,
    pvc: str | None = None,
    block: bool = False,
    env: dict[str, str] | None = None,
    api_access: bool = False,
    timeout: float = 180,
) -> str:
    """Run script in a pod from the smoke image, wait until it succeeds, return its log.

    With pvc, the claim is mounted at /data (Filesystem) or attached as /dev/xvda (Block).
    With api_access, the pod gets its service account token (off by default).
    """
    container: dict[str, Any] = {
        "name": "main",
        "image": cluster.smoke_image,
        "imagePullPolicy": "Never",  # images are built locally, there is no registry
        "command": ["/bin/sh", "-ec", script],
        "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
    }
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": api_access,
            "containers": [container],
        },
    }
    if pvc:
        pod["spec"]["volumes"] = [{"name": "vol", "persistentVolumeClaim": {"claimName": pvc}}]
        if block:
            container["volumeDevices"] = [{"name": "vol", "devicePath": "/dev/xvda"}]
        else:
            container["volumeMounts"] = [{"name": "vol", "mountPath": "/data"}]
    cluster.apply(namespace, pod)
    cluster.wait_for(
        f"pod {namespace}/{name} to finish",
        lambda: pod_phase(cluster, namespace, name) in ("Succeeded", "Failed"),
        timeout=timeout,
        on_timeout=lambda: cluster.describe(namespace),
    )
    logs = cluster.kubectl("-n", namespace, "logs", name, check=False)
    phase = pod_phase(cluster, namespace, name)
    assert phase == "Succeeded", f"pod {name} {phase}:\n{logs}\n{cluster.describe(namespace)}"
    return logs


def pvc_manifest(
    name: str, storage_class: str, *, block: bool = False, size: str = "64Mi"
) -> dict[str, Any]:
    """A ReadWriteOnce claim on storage_class."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": storage_class,
            "volumeMode": "Block" if block else "Filesystem",
            "resources": {"requests": {"storage": size}},
        },
    }


def pvc_phase(cluster: Cluster, namespace: str, name: str) -> str:
    """The claim's phase."""
    return cluster.get(namespace, "pvc", name)["status"].get("phase", "")
