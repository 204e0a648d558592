"""config/: what kustomize installs, read without a cluster. RBAC is least privilege and
explained rule by rule, the manager runs restricted, the VolumePopulator registration
matches its CRD. (tests/cluster/test_deploy.py checks the same on the local node.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
RBAC_FILES = sorted((ROOT / "config" / "rbac").glob("*.yaml"))


def _kustomize(path: str) -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl (with its built-in kustomize) is needed")
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module")
def default() -> list[dict[str, Any]]:
    return _kustomize("config/default")


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


@pytest.mark.parametrize("path", RBAC_FILES, ids=lambda p: p.name)
def test_every_rbac_rule_says_why(path: Path):
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^  - (apiGroups|nonResourceURLs):", line):
            assert lines[number - 1].lstrip().startswith("#"), (
                f"{path.name}:{number + 1}: a rule without a comment saying why"
            )


def test_operator_rbac_never_touches_secrets_and_grants_no_wildcards(default):
    roles = [o for o in default if o["kind"] in ("ClusterRole", "Role")]
    assert roles
    for role in roles:
        for rule in role.get("rules", []):
            assert "secrets" not in rule.get("resources", []), role["metadata"]["name"]
            for field in ("verbs", "resources", "apiGroups"):
                assert "*" not in rule.get(field, []), (role["metadata"]["name"], rule)


def test_operator_rbac_is_what_the_flow_needs(default):
    """The exact grants: a new verb needs a reason here too."""
    role = _one(default, "ClusterRole", "vmdiskimage-manager-role")
    grants = {
        (group, resource): sorted(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert grants == {
        ("vm.example.com", "vmdiskimages"): sorted(["get", "list", "watch", "update"]),
        ("vm.example.com", "vmdiskimages/status"): sorted(["get", "update", "patch"]),
        ("", "persistentvolumeclaims"): sorted(
            ["get", "list", "watch", "create", "update", "patch", "delete"]
        ),
        ("", "persistentvolumes"): sorted(["get", "patch"]),
        # list/watch: the claim marker follows populator pods (label selector) to see them end.
        ("", "pods"): sorted(["get", "list", "watch", "create", "delete"]),
        ("", "pods/log"): ["get"],
        ("", "configmaps"): ["get"],
        ("", "events"): sorted(["get", "create", "patch"]),
        ("storage.k8s.io", "storageclasses"): sorted(["get", "list", "watch"]),
    }
    bindings = [o for o in default if o["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    for binding in bindings:
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": "vmdiskimage-controller-manager",
                "namespace": "vmdiskimage-system",
            }
        ]


def test_manager_runs_restricted_with_probes_resources_and_leader_election(default):
    namespace = _one(default, "Namespace", "vmdiskimage-system")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    deployment = _one(default, "Deployment", "vmdiskimage-controller-manager")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["serviceAccountName"] == "vmdiskimage-controller-manager"
    for container in pod["containers"]:
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }, container["name"]
        assert container["resources"]["requests"] and container["resources"]["limits"]
    manager = pod["containers"][0]
    assert manager["name"] == "manager"
    assert manager["image"] == "localhost/vmdiskimage-operator:dev"
    assert "--leader-elect" in manager["args"]
    assert "--metrics-secure" in manager["args"] and "--metrics-require-rbac" in manager["args"]
    assert manager["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert manager["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {e["name"]: e.get("value") for e in manager["env"]}
    assert env["RELATED_IMAGE_POPULATOR"] == "localhost/vmdiskimage-populator:dev"
    service = _one(default, "Service", "vmdiskimage-controller-manager-metrics-service")
    assert service["spec"]["selector"] == pod_labels(deployment)


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return {"control-plane": deployment["spec"]["template"]["metadata"]["labels"]["control-plane"]}


def test_volume_populator_registers_our_kind_with_the_upstream_crd():
    crd = yaml.safe_load((ROOT / "hack" / "cluster" / "volumepopulator-crd.yaml").read_text())
    assert crd["spec"]["group"] == "populator.storage.k8s.io"
    assert crd["spec"]["scope"] == "Cluster"
    assert [v["name"] for v in crd["spec"]["versions"]] == ["v1beta1"]
    (populator,) = _kustomize("config/populator")
    assert populator["apiVersion"] == "populator.storage.k8s.io/v1beta1"
    assert populator["kind"] == crd["spec"]["names"]["kind"]
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert set(schema["properties"]["sourceKind"]["required"]) == set(populator["sourceKind"])
    ours = yaml.safe_load((ROOT / "config/crd/bases/vm.example.com_vmdiskimages.yaml").read_text())
    assert populator["sourceKind"] == {
        "group": ours["spec"]["group"],
        "kind": ours["spec"]["names"]["kind"],
    }
