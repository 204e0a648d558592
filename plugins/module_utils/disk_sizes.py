# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""disk_size's arguments and computation, shared by the module and its action plugin."""

from __future__ import annotations

import traceback

from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.failures import (
    ModuleFailure,
)

try:
    from vmdiskimage import sizing

    HAS_VMDISKIMAGE = True
    VMDISKIMAGE_IMPORT_ERROR = None
except ImportError:
    HAS_VMDISKIMAGE = False
    VMDISKIMAGE_IMPORT_ERROR = traceback.format_exc()

ARGUMENT_SPEC = dict(
    virtual_size=dict(type="raw", required=True),
    target_size=dict(type="raw"),
    volume_mode=dict(type="str", choices=["Filesystem", "Block"], default="Filesystem"),
    filesystem_overhead=dict(type="float"),
    pvc_capacity=dict(type="raw"),
)


def _both(size):
    return f"{sizing.format_quantity(size)} ({size} bytes)"


def compute(params):
    """The module result for ``params``; raises for sizes that do not work."""
    overhead = params["filesystem_overhead"]
    if overhead is None:
        overhead = sizing.DEFAULT_FILESYSTEM_OVERHEAD
    mode = params["volume_mode"]
    virtual = sizing.parse_quantity(params["virtual_size"])
    disk = sizing.target_virtual_size(virtual, params["target_size"])
    pvc = sizing.pvc_size(disk, mode, overhead)
    result = dict(
        changed=False,
        virtual_size=virtual,
        disk_size=disk,
        disk_size_quantity=sizing.format_quantity(disk),
        pvc_size=pvc,
        pvc_size_quantity=sizing.format_quantity(pvc),
    )
    if params["pvc_capacity"] not in (None, ""):
        capacity = sizing.parse_quantity(params["pvc_capacity"])
        usable = sizing.usable_disk_size(capacity, mode, overhead)
        result.update(pvc_capacity=capacity, usable_size=usable, fits=usable >= disk)
        if not result["fits"]:
            where = "" if mode == "Block" else f" after {overhead:.1%} filesystem overhead"
            raise ModuleFailure(
                f"the PVC's capacity {_both(capacity)} holds a disk of at most "
                f"{_both(usable)}{where}, but the disk needs {_both(disk)}; request at least "
                f"{_both(pvc)} for a {mode} volume",
                "PVCTooSmall",
                **result,
            )
    return result
