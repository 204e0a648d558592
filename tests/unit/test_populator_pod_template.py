"""The populator pod the populator role creates: the VMDiskImage's spec in its arguments.

The template is rendered by Ansible itself (an ad-hoc ``template`` lookup), with the
role's defaults and the facts the role sets before it creates the pod.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.module_harness import ROOT, render_template

pytestmark = pytest.mark.unit

TEMPLATE = "roles/populator/templates/populator_pod.yaml.j2"
DEFAULTS = ROOT / "roles" / "populator" / "defaults" / "main.yml"


def _pod(spec: dict[str, Any], tmp_path: Path, volume_mode: str = "Filesystem") -> dict:
    facts = {
        **yaml.safe_load(DEFAULTS.read_text()),
        "__vdi": {"spec": spec},
        "__volume_mode": volume_mode,
        "__pod_name": "populate-1",
        "__prime_name": "prime-1",
        "__namespace": "vms",
        "__claim_name": "root",
        "__claim_uid": "1",
        "__selected_node": "",
        "__state": {},
        "__source_image": spec["sourceImage"],
    }
    return render_template(TEMPLATE, facts, tmp_path)


def _args(pod: dict) -> list[str]:
    (container,) = pod["spec"]["containers"]
    return container["args"]


SPEC = {
    "sourceImage": "registry.example.com/exports/db-vm@sha256:" + "a" * 64,
    "targetPVC": {"name": "root"},
    "targetSize": "20Gi",
}


def test_disk_name_is_passed_to_the_populator(tmp_path):
    args = _args(_pod({**SPEC, "diskName": "datadisk"}, tmp_path))
    assert "--disk-name=datadisk" in args
    assert f"--source={SPEC['sourceImage']}" in args


def test_no_disk_name_no_argument(tmp_path):
    assert not [a for a in _args(_pod(SPEC, tmp_path)) if a.startswith("--disk-name")]


def test_the_pull_secret_is_an_optional_volume_named_to_the_populator(tmp_path):
    pod = _pod({**SPEC, "pullSecretName": "regcred"}, tmp_path)

    assert "--pull-secret-name=regcred" in _args(pod)
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "pull-secret"]
    # Not optional, a missing Secret would hold the pod in ContainerCreating, unreported.
    assert volume["secret"] == {
        "secretName": "regcred",
        "optional": True,
        "items": [{"key": ".dockerconfigjson", "path": ".dockerconfigjson"}],
    }
