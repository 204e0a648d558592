# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""disk_size in the controller: the same computation as the module, no module process.

The VMDiskImage role sizes its target PVC on the way to creating it, where a module
process (about half a second) delays the whole import. Where the controller's Python
lacks the vmdiskimage package, the module runs as usual (with the target's Python).
"""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.disk_sizes import (
    ARGUMENT_SPEC,
    HAS_VMDISKIMAGE,
    compute,
)
from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.failures import (
    describe_exception,
)

ACTION = "Working out the disk and PVC sizes"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if not HAS_VMDISKIMAGE:
            result.update(self._execute_module(task_vars=task_vars))
            return result
        validation = ArgumentSpecValidator(ARGUMENT_SPEC).validate(self._task.args)
        if validation.error_messages:
            result.update(failed=True, msg="; ".join(validation.error_messages))
            return result
        try:
            result.update(compute(validation.validated_parameters))
        except Exception as exc:
            result.update(failed=True, **describe_exception(exc, ACTION))
        return result
