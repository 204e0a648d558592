"""Put the collections pinned in requirements.yml into a directory for the image build.

Ansible Galaxy is not reachable from the machines this project is built on, but PyPI's
``ansible`` package (pinned in pyproject.toml) ships the same collection releases. This
copies each pinned collection out of the installed ``ansible`` package and refuses to go
on when the installed version is not the pinned one.

Usage: python hack/vendor_collections.py requirements.yml build/collections
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import ansible_collections
import yaml


def vendor(requirements: Path, dest: Path) -> list[str]:
    """Copy every collection of ``requirements`` into ``dest``/ansible_collections."""
    source_root = Path(next(iter(ansible_collections.__path__)))
    copied = []
    for item in yaml.safe_load(requirements.read_text())["collections"]:
        namespace, name = item["name"].split(".")
        source = source_root / namespace / name
        manifest = source / "MANIFEST.json"
        if not manifest.is_file():
            raise SystemExit(f"{item['name']} is not installed in {source_root}")
        installed = json.loads(manifest.read_text())["collection_info"]["version"]
        if installed != str(item["version"]):
            raise SystemExit(
                f"{item['name']}: requirements.yml pins {item['version']}, the installed "
                f"ansible package ships {installed}; align the two pins"
            )
        target = dest / "ansible_collections" / namespace / name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "tests"))
        copied.append(f"{item['name']} {installed}")
    return copied


if __name__ == "__main__":
    for line in vendor(Path(sys.argv[1]), Path(sys.argv[2])):
        print(line)
