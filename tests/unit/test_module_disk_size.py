"""disk_size: the sizing table, run through the module as Ansible would."""

from __future__ import annotations

import pytest

from tests.module_harness import run_module

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
