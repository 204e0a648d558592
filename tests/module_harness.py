"""Run this repository's Ansible modules the way Ansible does, and read their JSON result.

The repository root is the collection vm_example.vmdiskimage; it is importable as
``ansible_collections.vm_example.vmdiskimage`` through a symlink in ``.ansible/collections``
(gitignored, skipped by the linters), made here and by ``make collection-link``.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS_PATH = ROOT / ".ansible" / "collections"
COLLECTION_LINK = COLLECTIONS_PATH / "ansible_collections" / "vm_example" / "vmdiskimage"
MODULES_DIR = ROOT / "plugins" / "modules"
VENV_BIN = Path(sys.executable).parent


def ensure_collection_link() -> Path:
    """Make ``.ansible/collections/ansible_collections/vm_example/vmdiskimage -> ROOT``."""
    COLLECTION_LINK.parent.mkdir(parents=True, exist_ok=True)
    if not COLLECTION_LINK.is_symlink() or COLLECTION_LINK.resolve() != ROOT:
        tmp = COLLECTION_LINK.with_name(f".vmdiskimage.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.path.relpath(ROOT, COLLECTION_LINK.parent))
        tmp.replace(COLLECTION_LINK)
    return COLLECTION_LINK


ensure_collection_link()
if str(COLLECTIONS_PATH) not in sys.path:
    # Lets tests import the pure parts (module_utils) by their collection name.
    sys.path.insert(0, str(COLLECTIONS_PATH))


def module_names() -> list[str]:
    """Every module of the collection, by file name."""
    return sorted(p.stem for p in MODULES_DIR.glob("*.py") if not p.name.startswith("_"))


def ansible_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for ansible commands and modules run from the repository root."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    env["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS_PATH)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(COLLECTIONS_PATH), str(ROOT), env.get("PYTHONPATH")) if p
    )
    env.pop("ANSIBLE_MODULE_ARGS", None)
    env.update(extra or {})
    return env


def run_module(
    name: str,
    args: dict[str, Any],
    *,
    check_mode: bool = False,
    diff: bool = False,
    env: dict[str, str] | None = None,
    pythonpath_first: str | None = None,
    timeout: float = 120,
) -> dict[str, Any]:
    """Run plugins/modules/<name>.py with ANSIBLE_MODULE_ARGS; return its JSON result."""
    module_args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    env = ansible_env(env)
    if pythonpath_first:
        env["PYTHONPATH"] = os.pathsep.join((pythonpath_first, env["PYTHONPATH"]))
    proc = subprocess.run(
        [sys.executable, str(MODULES_DIR / f"{name}.py")],
        input=json.dumps({"ANSIBLE_MODULE_ARGS": module_args}),
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(
            f"module {name} printed no JSON (exit {proc.returncode}):\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        ) from None
    result["_rc"] = proc.returncode
    return result


def module_utils(name: str) -> Any:
    """Import ``plugins/module_utils/<name>.py`` by its collection name, as modules do."""
    return importlib.import_module(
        f"ansible_collections.vm_example.vmdiskimage.plugins.module_utils.{name}"
    )


def run_playbook(
    playbook: str,
    extra_vars: dict[str, Any] | None = None,
    *,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    timeout: float = 300,
) -> tuple[int, dict[str, Any], str]:
    """ansible-playbook playbooks/<playbook> (or an absolute path) -e <json>; (rc, JSON
    report, stdout and stderr)."""
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            str(ROOT / "playbooks" / playbook),
            "-e",
            json.dumps(extra_vars or {}),
            *args,
        ],
        capture_output=True,
        text=True,
        env=ansible_env({"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", **(env or {})}),
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    try:
        report = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    except ValueError:
        report = {}
    return proc.returncode, report, proc.stdout + proc.stderr


def run_task(
    tmp_path: Path,
    task: dict[str, Any],
    *,
    play_vars: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """One task in a localhost play (the collection in ``collections``), run by
    ansible-playbook from a file in ``tmp_path``; (rc, the task's result)."""
    playbook = tmp_path / "task.yml"
    play = {
        "name": "One task",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "collections": ["vm_example.vmdiskimage"],
        "vars": play_vars or {},
        "tasks": [task],
    }
    playbook.write_text(json.dumps([play]))  # JSON is YAML
    rc, report, output = run_playbook(str(playbook), env=env, timeout=120)
    results = task_results(report)
    assert len(results) == 1, output
    return rc, results[0]


def task_results(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The localhost result of each task of a JSON callback report, in order."""
    return [
        task["hosts"]["localhost"] for play in report.get("plays", []) for task in play["tasks"]
    ]


def render_template(template: str, facts: dict[str, Any], tmp_path: Path) -> Any:
    """A role's template rendered by Ansible itself (an ad-hoc ``template`` lookup) with
    ``facts`` as extra vars, parsed as YAML."""
    facts_file = tmp_path / "facts.json"
    facts_file.write_text(json.dumps(facts))
    proc = subprocess.run(
        [
            str(VENV_BIN / "ansible"), "localhost", "-c", "local", "-m", "ansible.builtin.debug",
            "-a", f"msg={{{{ lookup('ansible.builtin.template', '{template}') | from_yaml }}}}",
            "-e", f"@{facts_file}",
        ],
        capture_output=True,
        text=True,
        env=ansible_env({"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json"}),
        cwd=ROOT,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    return report["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]
