"""Every module renders with ansible-doc and documents what it returns."""

from __future__ import annotations

import ast
import subprocess

import pytest
import yaml

from tests.module_harness import MODULES_DIR, ROOT, VENV_BIN, ansible_env, module_names

pytestmark = pytest.mark.unit

MODULES = module_names()


def test_the_collection_has_its_modules():
    assert {"k8s_cr_status", "k8s_event", "pv_rebind"} <= set(MODULES)


def _doc_strings(name: str) -> dict[str, str]:
    tree = ast.parse((MODULES_DIR / f"{name}.py").read_text())
    return {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id in ("DOCUMENTATION", "EXAMPLES", "RETURN")
    }


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_renders(name):
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-doc"), "-t", "module", "--json", f"vm_example.vmdiskimage.{name}"],
        capture_output=True,
        text=True,
        env=ansible_env(),
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "[WARNING]" not in proc.stderr, proc.stderr
    doc = yaml.safe_load(proc.stdout)[f"vm_example.vmdiskimage.{name}"]
    assert doc["doc"]["short_description"]
    assert doc["examples"].strip()
    assert doc["return"], f"{name} has no RETURN"


def _entries(returns: dict, path: str = ""):
    for key, entry in returns.items():
        yield f"{path}{key}", entry
        yield from _entries(entry.get("contains") or {}, f"{path}{key}.")


@pytest.mark.parametrize("name", MODULES)
def test_return_values_say_when_and_what_type(name):
    returns = yaml.safe_load(_doc_strings(name)["RETURN"])
    for key, entry in _entries(returns):
        assert entry.get("returned"), f"{name}: RETURN {key} lacks 'returned'"
        assert entry.get("type"), f"{name}: RETURN {key} lacks 'type'"
        assert entry.get("description"), f"{name}: RETURN {key} lacks 'description'"


# ansible-operator recognises requeue_after only by its short name (it compares the task's
# action as written), so that module's examples must not use the fully qualified name.
SHORT_NAME_ONLY = {"requeue_after"}


@pytest.mark.parametrize("name", MODULES)
def test_examples_use_the_fully_qualified_name(name):
    examples = yaml.safe_load(_doc_strings(name)["EXAMPLES"])
    action = name if name in SHORT_NAME_ONLY else f"vm_example.vmdiskimage.{name}"
    for task in examples:
        assert action in task, task.get("name")
        assert task.get("name"), f"{name}: every example task has a name"


@pytest.mark.parametrize("name", MODULES)
def test_check_mode_is_supported(name):
    doc = yaml.safe_load(_doc_strings(name)["DOCUMENTATION"])
    assert doc["attributes"]["check_mode"]["support"] == "full"
    assert "supports_check_mode=True" in (
        (MODULES_DIR / f"{name}.py").read_text()
        + (ROOT / "plugins" / "module_utils" / "k8s.py").read_text()
    )
