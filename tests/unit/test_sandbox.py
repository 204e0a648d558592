"""The Landlock ruleset qemu-img runs under, tried with cat and a shell."""

from __future__ import annotations

import subprocess

import pytest

from vmdiskimage import sandbox

pytestmark = pytest.mark.unit


@pytest.fixture
def files(tmp_path):
    if not sandbox.abi_version():
        pytest.skip("this kernel has no Landlock")
    (tmp_path / "source").write_text("source bytes\n")
    (tmp_path / "secret").write_text("pull secret\n")
    (tmp_path / "target").write_text("")
    return tmp_path


def _run(args, read, write):
    ruleset, enforce = sandbox.restrict_child(read, write)
    with ruleset:
        return subprocess.run(args, capture_output=True, text=True, preexec_fn=enforce)


@pytest.mark.parametrize(
    ("name", "readable"), [("source", True), ("secret", False), ("target", True)]
)
def test_child_reads_only_what_it_was_given(files, name, readable):
    proc = _run(["cat", str(files / name)], [files / "source"], [files / "target"])
    assert (proc.returncode == 0) == readable, proc.stderr
    if not readable:
        assert "Permission denied" in proc.stderr


def test_child_writes_only_its_target(files):
    script = f"echo data > {files / 'target'} && echo data > {files / 'other'}"
    proc = _run(["sh", "-c", script], [], [files / "target"])
    assert (files / "target").read_text() == "data\n"
    assert proc.returncode != 0 and not (files / "other").exists()


def test_parent_keeps_its_access(files):
    _run(["true"], [], [])
    assert (files / "secret").read_text() == "pull secret\n"
