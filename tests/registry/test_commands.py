"""The two console scripts, run as processes the way users and the populator pod do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.registry

BIN = Path(sys.executable).parent


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120
    )


@pytest.mark.parametrize("kind", ["artifact", "containerdisk"])
def test_push_inspect_populate_commands(basic_registry, disks, tmp_path, kind):
    reg = basic_registry
    authfile = reg.dockerconfigjson_path()
    ref = f"{reg.url}/cli/{kind}:1"
    pushed = _run(
        [str(BIN / "vmdiskimage"), "push", str(disks["qcow2"]), ref, "--as", kind,
         "--authfile", str(authfile), "--ca-file", str(reg.ca_file)]
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    result = json.loads(pushed.stdout)
    assert result["format"] == "qcow2" and result["virtual_size"] == disks["raw"].stat().st_size

    inspected = _run(
        [str(BIN / "vmdiskimage"), "inspect", ref, "--authfile", str(authfile),
         "--ca-file", str(reg.ca_file)]
    )  # fmt: skip
    assert inspected.returncode == 0, inspected.stderr
    info = json.loads(inspected.stdout)
    assert info["digest"] == result["digest"]
    assert info["kind"] == ("artifact" if kind == "artifact" else "containerDisk")
    assert info["format"] == "qcow2" and info["virtual_size"] == result["virtual_size"]

    target = tmp_path / "volume"
    target.mkdir()
    env = {
        "VDI_SOURCE": ref,
        "VDI_TARGET": str(target),
        "VDI_TARGET_SIZE": "8Mi",
        "VDI_PULL_SECRET": str(authfile),
        "VDI_CA_FILE": str(reg.ca_file),
        "VDI_PROGRESS_FILE": str(tmp_path / "progress.json"),
        "VDI_TERMINATION_LOG": str(tmp_path / "termination-log"),
        "VDI_SCRATCH_DIR": str(tmp_path),
    }
    populated = _run([str(BIN / "vmdiskimage-populate")], env)
    assert populated.returncode == 0, populated.stderr
    message = json.loads((tmp_path / "termination-log").read_text())
    assert message["result"] == "Succeeded"
    assert message["digest"] == result["digest"]
    assert message["virtualSize"] == 8 << 20 and message["sourceFormat"] == "qcow2"
    lines = [json.loads(line)["progress"] for line in populated.stdout.splitlines()]
    assert lines[-1]["phase"] == "Succeeded"
    # A qcow2 source written as raw is decoded in one pass: no scratch file, no Converting.
    assert {"ImageFetching", "Copying"} <= {x["phase"] for x in lines}
    assert "Converting" not in {x["phase"] for x in lines}
    assert (message["decoder"], message["scratchBytes"]) == ("stream", 0)
    assert json.loads((tmp_path / "progress.json").read_text())["phase"] == "Succeeded"
    disk = (target / "disk.img").read_bytes()
    assert disk[: disks["raw"].stat().st_size] == disks["raw"].read_bytes()
    assert len(disk) == 8 << 20
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("vmdiskimage-")]  # scratch


def test_populate_usage_errors(tmp_path):
    proc = _run([str(BIN / "vmdiskimage-populate"), "--target", str(tmp_path)])
    assert proc.returncode == 2 and "--source" in proc.stderr
    log = tmp_path / "t"
    proc = _run(
        [str(BIN / "vmdiskimage-populate"), "--source", "Bad Ref", "--target", str(tmp_path),
         "--termination-log", str(log)]
    )  # fmt: skip
    assert proc.returncode == 1
    assert json.loads(log.read_text())["reason"] == "InvalidImageReference"


def test_push_refuses_backing_file(plain_registry, disks, tmp_path):
    overlay = tmp_path / "o.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(disks["qcow2"]),
         str(overlay)], check=True,
    )  # fmt: skip
    proc = _run(
        [str(BIN / "vmdiskimage"), "push", str(overlay), f"{plain_registry.url}/x/y:1",
         "--plain-http"]
    )  # fmt: skip
    assert proc.returncode == 1 and "BackingFileRefused" in proc.stderr
