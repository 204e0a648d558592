#!/usr/bin/python
# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Merge-patch the status subresource of a custom resource."""

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_cr_status
short_description: Update the status of a Kubernetes custom resource
version_added: 0.1.0
description:
  - Merge-patches the C(status) subresource of any object whose kind has one, such as a
    C(VMDiskImage).
  - Conditions are merged by C(type) with the ones already there, Kubernetes style;
    C(lastTransitionTime) changes only when a condition's C(status) flips.
  - C(status.observedGeneration) is set to the object's C(metadata.generation) unless
    O(observed_generation) says otherwise.
  - Writes nothing when the status already holds the requested values, so it reports
    C(changed) only for a real change. Retries when the object changes under it.
  - A replacement for C(operator_sdk.util.k8s_status) built on kubernetes.core.
author:
  - vmdiskimage-operator maintainers (@vm-example)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - kubernetes.core.k8s_auth_options
  - vm_example.vmdiskimage.k8s_object
options:
  status:
    description:
      - Fields to merge into C(status) (JSON merge patch semantics), for example
        C(phase) and C(message).
      - A field set to V(null) is removed. Nested mappings are merged; lists are replaced.
      - Conditions go in O(conditions), not here.
    type: dict
    default: {}
  conditions:
    description:
      - Conditions to set, merged by type with those already in C(status.conditions).
        Conditions of other types are left alone.
      - Each is a mapping with the Kubernetes condition keys - C(type) (required, CamelCase
        such as C(Ready)), C(status) (required, V("True"), V("False") or V("Unknown"); quote
        it in YAML), C(reason) (CamelCase) and C(message) (for people).
      - C(lastTransitionTime) and C(observedGeneration) are set by the module.
    type: list
    elements: dict
    default: []
  observed_generation:
    description:
      - Value of C(status.observedGeneration) and of each new condition's
        C(observedGeneration). Defaults to the object's C(metadata.generation).
    type: int
  set_observed_generation:
    description:
      - Whether to set C(status.observedGeneration) at all.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details: Computes the new status and reports it without writing it.
  diff_mode:
    support: full
    details: The diff shows the status before and after.
  platform:
    platforms: posix
requirements:
  - kubernetes.core (for its connection options); the Kubernetes Python client is not used
"""

EXAMPLES = r"""
- name: Record that the image is being fetched
  vm_example.vmdiskimage.k8s_cr_status:
    api_version: vm.example.com/v1alpha1
    kind: VMDiskImage
    name: fedora-41
    namespace: vms
    status:
      phase: ImageFetching
      message: Reading quay.io/containerdisks/fedora:41
    conditions:
      - type: Ready
        status: "False"
        reason: ImageFetching
        message: The image manifest is being read.

- name: Clear the progress fields once done
  vm_example.vmdiskimage.k8s_cr_status:
    api_version: vm.example.com/v1alpha1
    kind: VMDiskImage
    name: fedora-41
    namespace: vms
    status:
      phase: Ready
      progress: null
    conditions:
      - type: Ready
        status: "True"
        reason: ImportSucceeded
"""

RETURN = r"""
status:
  description: The status after the update (or, in check mode, as it would be).
  returned: success
  type: dict
  sample:
    phase: Ready
    observedGeneration: 2
    conditions:
      - type: Ready
        status: "True"
        reason: ImportSucceeded
        lastTransitionTime: "2026-11-26T10:00:00Z"
        observedGeneration: 2
transitioned:
  description: Types of the conditions whose status flipped or that are new.
  returned: success
  type: list
  elements: str
  sample: [Ready]
reason:
  description: CamelCase reason of a failure, such as C(NotFound) or C(Forbidden).
  returned: failure
  type: str
  sample: NotFound
"""

from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.conditions import (
    ConditionError,
    desired_status,
    merge_patch_between,
    normalize_condition,
)
from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.failures import (
    ModuleFailure,
    fail_from_exception,
)
from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.k8s import (
    OBJECT_ARG_SPEC,
    api_client,
    find_resource,
    get_object,
    k8s_module,
    merge_patch,
    now_rfc3339,
    retry_on_conflict,
)

ARGUMENT_SPEC = dict(
    OBJECT_ARG_SPEC,
    status=dict(type="dict", default={}),
    conditions=dict(type="list", elements="dict", default=[]),
    observed_generation=dict(type="int"),
    set_observed_generation=dict(type="bool", default=True),
)


def _transitioned(before, after):
    old = {c.get("type"): c.get("status") for c in before.get("conditions") or []}
    return [c["type"] for c in after.get("conditions") or [] if old.get(c["type"]) != c["status"]]


def update_status(module, client):
    """Read the object, merge, write if different; return the module result."""
    params = module.params
    resource = find_resource(client, params["api_version"], params["kind"])
    if "status" not in resource.subresources:
        raise ModuleFailure(
            f"{resource.kind} ({params['api_version']}) has no status subresource; enable "
            "subresources.status in its CustomResourceDefinition",
            "NoStatusSubresource",
        )
    where = f"{resource.kind} {params['namespace'] + '/' if params['namespace'] else ''}"
    obj = get_object(client, resource, params["name"], params["namespace"])
    if obj is None:
        raise ModuleFailure(f"{where}{params['name']} does not exist", "NotFound")
    generation = params["observed_generation"]
    if generation is None:
        generation = obj["metadata"].get("generation")
    before = obj.get("status") or {}
    after = desired_status(
        before,
        params["status"],
        params["conditions"],
        now_rfc3339(),
        generation,
        params["set_observed_generation"],
    )
    result = dict(
        changed=after != before,
        status=after,
        transitioned=_transitioned(before, after),
        diff=dict(before=before, after=after),
    )
    if result["changed"] and not module.check_mode:
        # The resourceVersion makes the write fail with 409 if the status moved meanwhile:
        # the merged conditions are then recomputed from the fresh object.
        body = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}}
        body["status"] = merge_patch_between(before, after)
        written = merge_patch(client, resource.status, body, params["name"], params["namespace"])
        result["status"] = written.get("status") or {}
    return result


def main():
    module = k8s_module(ARGUMENT_SPEC)
    action = f"Updating the status of {module.params['kind']} {module.params['name']}"
    try:
        # Bad input is reported before the API is contacted.
        for condition in module.params["conditions"]:
            normalize_condition(condition)
        if "conditions" in module.params["status"]:
            raise ConditionError("give conditions with the 'conditions' option, not in 'status'")
    except ConditionError as exc:
        module.fail_json(msg=str(exc), reason="InvalidCondition")
    try:
        client = api_client(module)
        result = retry_on_conflict(lambda: update_status(module, client))
    except Exception as exc:
        fail_from_exception(module, exc, action)
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
