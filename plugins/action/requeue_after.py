# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""requeue_after in the controller: the period back as a result, no module process.

Every reconcile that requeues ends with this task, and ansible-operator returns the
reconcile as soon as the task's result arrives; a module run would add a Python
process (about half a second) to each of them. The module of the same name documents
the task and runs where this plugin is not found.
"""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.durations import (
    period_error,
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("period",))
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        period = str(self._task.args.get("period") or "").strip()
        error = period_error(period)
        if error:
            result.update(failed=True, msg=error, reason="InvalidArgument")
            return result
        result.update(changed=False, period=period)
        return result
