"""The target PVC the VMDiskImage role creates (createIfNotExist): its dataSourceRef, and
the digest its run resolved, which the claim's first reconcile pulls without waiting for
the status write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.module_harness import ROOT, render_template

pytestmark = pytest.mark.unit

TEMPLATE = "roles/vmdiskimage/templates/target_pvc.yaml.j2"
DEFAULTS = ROOT / "roles" / "vmdiskimage" / "defaults" / "main.yml"
DIGEST = "sha256:" + "ab" * 32


def _pvc(tmp_path: Path, **facts: Any) -> dict:
    return render_template(
        TEMPLATE,
        {
            **yaml.safe_load(DEFAULTS.read_text()),
            "__target_name": "root",
            "__namespace": "vms",
            "__name": "fedora",
            "__spec": {"targetPVC": {"name": "root", "createIfNotExist": True}},
            "__sizing": {"pvc_size_quantity": "11Gi"},
            **facts,
        },
        tmp_path,
    )


def test_a_resolved_digest_goes_on_the_pvc(tmp_path: Path) -> None:
    pvc = _pvc(tmp_path, __source_status={"digest": DIGEST})
    annotations = pvc["metadata"]["annotations"]
    assert annotations == {
        "vm.example.com/created-for": "fedora",
        "vm.example.com/source-digest": DIGEST,
    }
    assert pvc["spec"]["dataSourceRef"] == {
        "apiGroup": "vm.example.com",
        "kind": "VMDiskImage",
        "name": "fedora",
    }


def test_no_digest_when_the_registry_was_not_asked(tmp_path: Path) -> None:
    # A pull secret: the first import resolves the tag itself.
    pvc = _pvc(tmp_path)
    assert "vm.example.com/source-digest" not in pvc["metadata"]["annotations"]
