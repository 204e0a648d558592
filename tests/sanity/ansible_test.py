"""Run ``ansible-test sanity`` on the collection without moving the repository.

ansible-test wants its working directory at ``ansible_collections/<ns>/<name>``. This
copies the collection's content (what galaxy.yml would ship from plugins/ and meta/,
plus the sanity ignore file) into such a tree under a cache directory, links the
kubernetes.core collection of the venv next to it, and runs ansible-test there with a
HOME of its own (ansible-test keeps its per-test virtualenvs in ~/.ansible/test).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import ansible_test

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vmdiskimage" / "sanity"
CONTENT = ("galaxy.yml", "README.md", "meta", "plugins", "tests/sanity/ignore-2.19.txt")
SHIM = Path(__file__).with_name("get_pip_shim.py")


@dataclass
class SanityRun:
    returncode: int
    output: str
    tests_run: list[str]


def _pip_version() -> str:
    """The pip version ansible-test bootstraps into its virtualenvs."""
    source = Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
    match = re.search(r"pip='([0-9.]+)'", source.read_text())
    if not match:
        raise RuntimeError(f"cannot find the pip version ansible-test uses in {source}")
    return match.group(1)


def prepare(cache: Path = CACHE) -> Path:
    """Build ``<cache>/tree/ansible_collections/vm_example/vmdiskimage``; return its path."""
    collections = cache / "tree" / "ansible_collections"
    target = collections / "vm_example" / "vmdiskimage"
    shutil.rmtree(target, ignore_errors=True)
    for item in CONTENT:
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, target / item, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            (target / item).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / item)
    import ansible_collections.kubernetes.core as k8s_core

    link = collections / "kubernetes" / "core"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        link.unlink()
    link.symlink_to(Path(k8s_core.__path__[0]))
    home_cache = cache / "home" / ".ansible" / "test" / "cache"
    home_cache.mkdir(parents=True, exist_ok=True)
    shutil.copy2(SHIM, home_cache / f"get_pip_{_pip_version().replace('.', '_')}.py")
    return target


def run(targets: tuple[str, ...] = ("plugins/",), cache: Path = CACHE) -> SanityRun:
    """ansible-test sanity --python <this python> --local on ``targets``."""
    tree = prepare(cache)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    env = dict(os.environ)
    env["HOME"] = str(cache / "home")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for name in ("ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH", "PYTHONPATH"):
        env.pop(name, None)
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-test"),
            "sanity",
            "--python",
            python,
            "--local",
            "--color",
            "no",
            *targets,
        ],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    output = proc.stdout + proc.stderr
    tests_run = re.findall(r'Running sanity test "([^"]+)"', output)
    return SanityRun(proc.returncode, output, tests_run)


if __name__ == "__main__":
    result = run(tuple(sys.argv[1:]) or ("plugins/",))
    print(result.output)
    print("sanity tests run:", ", ".join(result.tests_run))
    sys.exit(result.returncode)
