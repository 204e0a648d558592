#!/usr/bin/python
# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Ask the ansible-operator runtime to reconcile the object again after a while."""

from __future__ import annotations

DOCUMENTATION = r"""
module: requeue_after
short_description: Ask ansible-operator to reconcile the current object again later
version_added: 0.1.0
description:
  - Returns O(period) as C(period). The C(ansible-operator) runtime watches its tasks'
    results, and a task whose action is exactly C(requeue_after) (or
    C(operator_sdk.util.requeue_after)) sets the reconcile's C(RequeueAfter) to that
    period. A stand-in for C(operator_sdk.util.requeue_after), which is not on PyPI.
  - The runtime matches the action as written in the task, so call it by its short name
    with the collection listed in the role's C(collections) (a fully qualified name is
    not recognised).
  - The runtime stops reading a run's results at this task, so it must be the last task
    of a reconcile.
  - Outside the operator (C(ansible-playbook) by hand) it changes nothing.
  - An action plugin of the same name does the work in the controller, so the task
    starts no module process (every reconcile that requeues ends with it, and
    ansible-operator ends the reconcile when its result arrives); this module is what
    runs where the action plugin is not found.
author:
  - vmdiskimage-operator maintainers (@vm-example)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  period:
    description:
      - How long to wait, as a Go duration such as C(5s), C(1m30s) or C(500ms).
    type: str
    required: true
attributes:
  check_mode:
    support: full
    details: Nothing is changed in any mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
"""

EXAMPLES = r"""
- name: Look at the import again in five seconds
  requeue_after:  # noqa: fqcn[action] - ansible-operator matches this exact action name
    period: 5s
"""

RETURN = r"""
period:
  description: The period, as given; ansible-operator reads it from here.
  returned: success
  type: str
  sample: 5s
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.durations import (
    period_error,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(period=dict(type="str", required=True)),
        supports_check_mode=True,
    )
    period = module.params["period"].strip()
    error = period_error(period)
    if error:
        module.fail_json(msg=error, reason="InvalidArgument")
    module.exit_json(changed=False, period=period)


if __name__ == "__main__":
    main()
