from __future__ import annotations

import pytest

from vmdiskimage import sizing
from vmdiskimage.errors import InvalidArgument, TargetTooSmall

pytestmark = pytest.mark.unit
Mi, Gi = sizing.MiB, sizing.GiB


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20Gi", 20 * Gi), ("512Mi", 512 * Mi), ("1Ki", 1024), ("10G", 10**10),
        ("1.5Gi", 3 * Gi // 2),
        ("1e3", 1000), ("4096", 4096), (123, 123), ("0.5k", 500), ("1Ti", 1 << 40), ("100M", 10**8),
        (" 7Mi ", 7 * Mi), ("0.1", 1),
    ],
)  # fmt: skip
def test_parse_quantity(value, expected):
    assert sizing.parse_quantity(value) == expected


@pytest.mark.parametrize("value", ["", "Gi", "10Gb", "-1Gi", "1.2.3", -5, True, "ten"])
def test_parse_quantity_rejects(value):
    with pytest.raises(InvalidArgument):
        sizing.parse_quantity(value)


@pytest.mark.parametrize(
    ("size", "text"),
    [(20 * Gi, "20Gi"), (Mi, "1Mi"), (3072, "3Ki"), (1536, "1536"), (1000, "1000"), (0, "0")],
)
def test_format_quantity(size, text):
    assert sizing.format_quantity(size) == text


def test_target_virtual_size():
    assert sizing.target_virtual_size(10 * Gi) == 10 * Gi
    assert sizing.target_virtual_size(1000) == 1024  # sector aligned
    assert sizing.target_virtual_size(10 * Gi, "20Gi") == 20 * Gi
    assert sizing.target_virtual_size(10 * Gi, "") == 10 * Gi
    with pytest.raises(TargetTooSmall) as exc:
        sizing.target_virtual_size(12 * Gi, "10Gi")
    assert "10Gi" in exc.value.message and "12Gi" in exc.value.message
    assert exc.value.details == {"target_size": 10 * Gi, "virtual_size": 12 * Gi}


@pytest.mark.parametrize(
    ("virtual", "mode", "overhead", "expected"),
    [
        (10 * Gi, "Block", 0.055, 10 * Gi),
        (10 * Gi + 1, "Block", 0.055, 10 * Gi + Mi),
        (10 * Gi, "Filesystem", 0.0, 10 * Gi),
        (10 * Gi, "Filesystem", 0.055, 10836 * Mi),  # ceil(10Gi / 0.945) MiB-aligned
        (945 * Mi, "Filesystem", 0.055, 1000 * Mi),
    ],
)
def test_pvc_size(virtual, mode, overhead, expected):
    assert sizing.pvc_size(virtual, mode, overhead) == expected
    # And the disk fits back into what was requested.
    assert sizing.usable_disk_size(expected, mode, overhead) >= virtual


def test_default_overhead_and_bad_inputs():
    assert sizing.DEFAULT_FILESYSTEM_OVERHEAD == 0.055
    with pytest.raises(InvalidArgument):
        sizing.pvc_size(Gi, "Shared")
    with pytest.raises(InvalidArgument):
        sizing.pvc_size(Gi, "Filesystem", 1.0)
    assert sizing.align_up(1, 512) == 512 and sizing.align_up(0, 512) == 0


@pytest.mark.parametrize(("value", "size"), [(None, None), ("", None), ("1Ki", 1024), (0, 0)])
def test_requested_size(value, size):
    assert sizing.requested_size(value) == size


def test_container_file_limit():
    assert sizing.container_file_limit(8 * sizing.GiB) == 9 * sizing.GiB + 64 * sizing.MiB
