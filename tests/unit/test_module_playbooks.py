"""The two-task playbooks in playbooks/: they parse, and the pure one runs."""

from __future__ import annotations

import subprocess

import pytest

from tests.module_harness import ROOT, VENV_BIN, ansible_env, run_playbook, task_results

pytestmark = pytest.mark.unit

PLAYBOOKS = sorted(p.name for p in (ROOT / "playbooks").glob("*.yml"))


def test_every_module_has_a_playbook():
    assert {
        "inspect.yml",
        "disk_size.yml",
        "set_status.yml",
        "emit_event.yml",
        "rebind_pv.yml",
    } <= set(PLAYBOOKS)


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_parses(playbook):
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "--syntax-check", str(ROOT / "playbooks" / playbook)],
        capture_output=True,
        text=True,
        env=ansible_env(),
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_disk_size_playbook_prints_the_sizes():
    rc, report, output = run_playbook(
        "disk_size.yml", {"virtual_size": "10Gi", "target_size": "20Gi"}
    )
    assert rc == 0, output
    sizes, shown = task_results(report)
    assert sizes["pvc_size_quantity"] == "21672Mi"
    assert shown["__sizes"]["disk_size_quantity"] == "20Gi"


def test_disk_size_playbook_fails_with_both_numbers():
    rc, report, output = run_playbook(
        "disk_size.yml", {"virtual_size": "10Gi", "target_size": "20Gi", "pvc_capacity": "20Gi"}
    )
    assert rc == 2, output
    (sizes,) = task_results(report)
    assert sizes["reason"] == "PVCTooSmall"
    assert "20Gi" in sizes["msg"] and "21672Mi" in sizes["msg"]


def test_a_missing_variable_is_named():
    rc, _, output = run_playbook("inspect.yml")
    assert rc != 0
    assert "-e image=" in output
