"""requeue_after: the period ansible-operator reads back, and refusal of what Go cannot parse."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.module_harness import ROOT, VENV_BIN, ansible_env, run_module, task_results

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("period", ["5s", "1m30s", "500ms", "2h", "1.5s"])
def test_a_go_duration_is_returned_as_period(period):
    result = run_module("requeue_after", {"period": period})
    assert result.get("failed") is not True, result
    assert result["period"] == period
    assert result["changed"] is False


@pytest.mark.parametrize("period", ["5", "five seconds", "5 s", "-5s", "s", ""])
def test_anything_else_is_refused_with_a_reason(period):
    result = run_module("requeue_after", {"period": period})
    assert result["failed"] is True
    assert result["reason"] == "InvalidArgument"
    assert "Go duration" in result["msg"]


def _run_task(tmp_path, period):
    """The requeue_after task in a play whose Python interpreter does not exist."""
    playbook = tmp_path / "requeue.yml"
    playbook.write_text(
        f"""
- name: Requeue
  hosts: localhost
  connection: local
  gather_facts: false
  collections: [vm_example.vmdiskimage]
  vars:
    ansible_python_interpreter: /nonexistent/python3
  tasks:
    - name: Look again later
      requeue_after:
        period: {json.dumps(period)}
"""
    )
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(playbook)],
        capture_output=True,
        text=True,
        env=ansible_env({"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}),
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    (result,) = task_results(json.loads(proc.stdout))
    return proc.returncode, result


# Every reconcile that requeues ends with this task, and ansible-operator returns the
# reconcile when its result arrives: no Python module process may delay that. Any module
# run would fail on the interpreter that does not exist.
def test_the_task_runs_in_the_controller_with_no_module_process(tmp_path):
    rc, result = _run_task(tmp_path, "5s")
    assert rc == 0, result
    assert result["period"] == "5s"
    assert result["changed"] is False


def test_the_task_refuses_what_go_cannot_parse(tmp_path):
    rc, result = _run_task(tmp_path, "5 s")
    assert rc == 2, result
    assert result["reason"] == "InvalidArgument"
    assert "Go duration" in result["msg"]
