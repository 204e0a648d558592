"""disk_size: the sizing table, run through the module as Ansible would."""

from __future__ import annotations

import os
import sys

import pytest

from tests.module_harness import ansible_env, run_module, run_task

pytestmark = pytest.mark.unit

GiB = 1 << 30
MiB = 1 << 20

# (arguments, disk_size, pvc_size): Filesystem requests leave 5.5 % (the default) or
# the given overhead free and are rounded up to MiB; Block requests are the disk itself.
SIZES = [
    pytest.param({"virtual_size": "10Gi"}, 10 * GiB, 10836 * MiB, id="no-target-keeps-virtual"),
    pytest.param(
        {"virtual_size": 10 * GiB, "target_size": "20Gi"}, 20 * GiB, 21672 * MiB, id="fs-default"
    ),
    pytest.param(
        {"virtual_size": "10737418240", "target_size": "20Gi", "volume_mode": "Block"},
        20 * GiB,
        20 * GiB,
        id="block-digit-string",
    ),
    pytest.param(
        {"virtual_size": "10Gi", "target_size": "20Gi", "filesystem_overhead": 0.0},
        20 * GiB,
        20 * GiB,
        id="fs-no-overhead",
    ),
    pytest.param(
        {"virtual_size": "10Gi", "target_size": "20Gi", "filesystem_overhead": 0.5},
        20 * GiB,
        40 * GiB,
        id="fs-half-overhead",
    ),
    pytest.param(
        {"virtual_size": 1000, "volume_mode": "Block"}, 1024, MiB, id="sector-and-mib-alignment"
    ),
    pytest.param(
        {"virtual_size": "10Gi", "target_size": "25G", "volume_mode": "Block"},
        25 * 10**9,
        23842 * MiB,
        id="decimal-quantity",
    ),
]


@pytest.mark.parametrize(("args", "disk", "pvc"), SIZES)
def test_sizes(args, disk, pvc):
    result = run_module("disk_size", args)
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is False
    assert result["disk_size"] == disk
    assert result["pvc_size"] == pvc
    assert result["pvc_size_quantity"]


def test_quantities_are_exact():
    result = run_module("disk_size", {"virtual_size": "10Gi", "target_size": "20Gi"})
    assert result["disk_size_quantity"] == "20Gi"
    assert result["pvc_size_quantity"] == "21672Mi"


def test_target_below_virtual_size_fails_with_both_numbers():
    result = run_module("disk_size", {"virtual_size": "12Gi", "target_size": "10Gi"})
    assert result["failed"] is True
    assert result["reason"] == "TargetTooSmall"
    assert "10Gi" in result["msg"]
    assert "12Gi" in result["msg"]
    assert (result["target_size"], result["virtual_size"]) == (10 * GiB, 12 * GiB)


@pytest.mark.parametrize(
    ("mode", "capacity", "fits"),
    [
        ("Block", "20Gi", True),
        ("Block", "30Gi", True),
        ("Filesystem", "21672Mi", True),
        ("Filesystem", "21671Mi", False),
        ("Filesystem", "20Gi", False),
        ("Block", "19Gi", False),
    ],
)
def test_existing_pvc_capacity(mode, capacity, fits):
    args = {"virtual_size": "10Gi", "target_size": "20Gi", "volume_mode": mode}
    result = run_module("disk_size", dict(args, pvc_capacity=capacity))
    assert result["fits"] is fits
    if fits:
        assert result.get("failed") is not True
        assert result["usable_size"] >= 20 * GiB
    else:
        assert result["failed"] is True
        assert result["reason"] == "PVCTooSmall"
        assert capacity in result["msg"]
        assert "20Gi" in result["msg"]
        assert result["pvc_size_quantity"] in result["msg"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"virtual_size": "ten"}, "'ten' is not a Kubernetes quantity"),
        ({"virtual_size": "1Gi", "target_size": "2Qi"}, "2Qi"),
        ({"virtual_size": "1Gi", "filesystem_overhead": 1.0}, "must be in [0, 1)"),
        ({"virtual_size": "1Gi", "volume_mode": "Raw"}, "Filesystem, Block"),
        ({"target_size": "1Gi"}, "missing required arguments: virtual_size"),
        ({"virtual_size": -5}, "negative"),
    ],
)
def test_bad_arguments(args, fragment):
    result = run_module("disk_size", args)
    assert result["failed"] is True
    assert fragment in result["msg"]


def test_missing_package_is_reported_with_missing_required_lib(tmp_path):
    # A vmdiskimage that cannot be imported shadows the real one.
    (tmp_path / "vmdiskimage").mkdir()
    (tmp_path / "vmdiskimage" / "__init__.py").write_text("raise ImportError('gone')\n")
    result = run_module("disk_size", {"virtual_size": "1Gi"}, pythonpath_first=str(tmp_path))
    assert result["failed"] is True
    assert result["reason"] == "MissingLibrary"
    assert "vmdiskimage" in result["msg"]


def _run_task(tmp_path, args, interpreter="/nonexistent/python3", pythonpath_first=None):
    """The disk_size task in a play, by default one whose Python interpreter does not exist."""
    env = None
    if pythonpath_first:
        env = {"PYTHONPATH": os.pathsep.join((pythonpath_first, ansible_env()["PYTHONPATH"]))}
    return run_task(
        tmp_path,
        {"name": "Work out the sizes", "vm_example.vmdiskimage.disk_size": args},
        play_vars={"ansible_python_interpreter": interpreter},
        env=env,
    )


# The VMDiskImage role sizes the target PVC on the way to creating it: the task runs in
# the controller (an action plugin), with no module process. Any module run would fail
# on the interpreter that does not exist.
def test_the_task_runs_in_the_controller_with_no_module_process(tmp_path):
    rc, result = _run_task(tmp_path, {"virtual_size": "10Gi", "target_size": "20Gi"})
    assert rc == 0, result
    assert result["pvc_size_quantity"] == "21672Mi"
    assert result["disk_size"] == 20 * GiB
    assert result["changed"] is False


@pytest.mark.parametrize(
    ("args", "reason", "fragment"),
    [
        pytest.param(
            {"virtual_size": "10Gi", "target_size": "20Gi", "pvc_capacity": "20Gi"},
            "PVCTooSmall",
            "21672Mi",
            id="pvc-too-small",
        ),
        pytest.param(
            {"virtual_size": "20Gi", "target_size": "10Gi"},
            "TargetTooSmall",
            "10Gi",
            id="target-too-small",
        ),
        pytest.param(
            {"virtual_size": "10Gi", "volume_mode": "Tape"},
            None,
            "Tape",
            id="bad-choice",
        ),
        pytest.param({"target_size": "10Gi"}, None, "virtual_size", id="missing-argument"),
    ],
)
def test_the_task_fails_as_the_module_does(tmp_path, args, reason, fragment):
    rc, result = _run_task(tmp_path, args)
    assert rc == 2, result
    assert result["failed"] is True
    if reason:  # argument errors carry none, from the module either
        assert result["reason"] == reason, result
    assert fragment in result["msg"]


def test_without_the_package_in_the_controller_the_module_runs(tmp_path):
    # The shadowing package hides vmdiskimage from the controller and from the module
    # (which inherits PYTHONPATH): MissingLibrary can only come from the module's run.
    (tmp_path / "vmdiskimage").mkdir()
    (tmp_path / "vmdiskimage" / "__init__.py").write_text("raise ImportError('gone')\n")
    rc, result = _run_task(
        tmp_path,
        {"virtual_size": "1Gi"},
        interpreter=sys.executable,
        pythonpath_first=str(tmp_path),
    )
    assert rc == 2, result
    assert result["reason"] == "MissingLibrary"
