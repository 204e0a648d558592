#!/usr/bin/python
# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Record a Kubernetes Event on any object, folding repeats into a count."""

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_event
short_description: Record a Kubernetes Event about an object, counting repeats
version_added: 0.1.0
description:
  - Records a C(Normal) or C(Warning) Event (core/v1) about any object, as
    C(kubectl describe) and C(kubectl get events) show them.
  - The Event's name is derived from the object's UID, the type, the reason and the
    message, so the same event recorded again (every reconcile, for instance) raises the
    C(count) and C(lastTimestamp) of the existing Event instead of adding a new one.
  - Reasons must be CamelCase words, the Kubernetes convention.
author:
  - vmdiskimage-operator maintainers (@vm-example)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - kubernetes.core.k8s_auth_options
  - vm_example.vmdiskimage.k8s_object
options:
  uid:
    description:
      - UID of the object. When unset the object is read to learn it (and must exist).
    type: str
  type:
    description: Event type.
    type: str
    choices: [Normal, Warning]
    default: Normal
  reason:
    description:
      - Why the event happened, as a CamelCase word such as C(ImageNotFound).
    type: str
    required: true
  note:
    description:
      - What happened, for a person - the Event's C(message) (C(note) in events.k8s.io/v1;
        Ansible reserves the option name C(message)). Cut to 1024 characters.
    type: str
    required: true
  reporting_component:
    description: Who reports the event (C(source.component), C(reportingComponent)).
    type: str
    default: vmdiskimage-operator
  reporting_instance:
    description: Which instance of the component reports it (C(reportingInstance)).
    type: str
    default: vmdiskimage-operator
attributes:
  check_mode:
    support: full
    details: Reports what would be recorded without writing.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - kubernetes.core (for its connection options); the Kubernetes Python client is not used
notes:
  - Events of cluster-scoped objects (such as PersistentVolumes) are recorded in the
    C(default) namespace, as Kubernetes components do.
"""

EXAMPLES = r"""
- name: Tell the user the VMDiskImage named by the PVC does not exist
  vm_example.vmdiskimage.k8s_event:
    api_version: v1
    kind: PersistentVolumeClaim
    name: fedora-41-root
    namespace: vms
    type: Warning
    reason: VMDiskImageNotFound
    note: VMDiskImage vms/fedora-41 named in dataSourceRef does not exist; create it.

- name: Record the end of an import on the VMDiskImage
  vm_example.vmdiskimage.k8s_event:
    api_version: vm.example.com/v1alpha1
    kind: VMDiskImage
    name: fedora-41
    namespace: vms
    uid: "{{ _vm_example_com_vmdiskimage.metadata.uid }}"
    reason: ImportSucceeded
    note: The disk of quay.io/containerdisks/fedora:41 is in PVC fedora-41-root.
"""

RETURN = r"""
event:
  description: The Event as written (in check mode, as it would be written).
  returned: success
  type: dict
  sample:
    metadata: {name: fedora-41-root.3f9a1c2b7d4e5f60, namespace: vms}
    type: Warning
    reason: VMDiskImageNotFound
    count: 3
    firstTimestamp: "2026-11-26T10:00:00Z"
    lastTimestamp: "2026-11-26T10:10:00Z"
name:
  description: Name of the Event, the same for every repeat of this event on this object.
  returned: success
  type: str
  sample: fedora-41-root.3f9a1c2b7d4e5f60
count:
  description: How many times the event has been recorded, this time included.
  returned: success
  type: int
  sample: 3
reason:
  description:
    - On success, the event's reason.
    - On failure, a CamelCase word saying why, such as C(InvalidReason) or C(Forbidden).
  returned: always
  type: str
  sample: VMDiskImageNotFound
"""

from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.events import (
    event_name,
    new_event,
    repeat_patch,
    truncate_message,
    validate_reason,
)
from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.failures import (
    ModuleFailure,
    fail_from_exception,
)
from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.k8s import (
    OBJECT_ARG_SPEC,
    ConflictError,
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
    uid=dict(type="str"),
    type=dict(type="str", choices=["Normal", "Warning"], default="Normal"),
    reason=dict(type="str", required=True),
    note=dict(type="str", required=True),
    reporting_component=dict(type="str", default="vmdiskimage-operator"),
    reporting_instance=dict(type="str", default="vmdiskimage-operator"),
)


def involved_object(module, client):
    """The involvedObject reference; reads the object only when its UID is not given."""
    params = module.params
    ref = {
        "apiVersion": params["api_version"],
        "kind": params["kind"],
        "name": params["name"],
        "uid": params["uid"],
    }
    if params["namespace"]:
        ref["namespace"] = params["namespace"]
    if not ref["uid"]:
        resource = find_resource(client, params["api_version"], params["kind"])
        obj = get_object(client, resource, params["name"], params["namespace"])
        if obj is None:
            where = f"{params['namespace']}/" if params["namespace"] else ""
            raise ModuleFailure(
                f"cannot record an event on {resource.kind} {where}{params['name']}: it does "
                "not exist",
                "NotFound",
            )
        ref["kind"] = resource.kind
        ref["uid"] = obj["metadata"]["uid"]
    return ref


def record(module, client, events, ref):
    """Create the Event, or raise the count of the one already recorded."""
    params = module.params
    message = truncate_message(params["note"])
    name = event_name(ref["name"], ref["uid"], params["type"], params["reason"], message)
    namespace = ref.get("namespace") or "default"
    now = now_rfc3339()
    existing = get_object(client, events, name, namespace)
    if existing is None:
        body = new_event(
            name,
            namespace,
            ref,
            params["type"],
            params["reason"],
            message,
            params["reporting_component"],
            params["reporting_instance"],
            now,
        )
        if module.check_mode:
            return body
        try:
            return client.create(events, body, namespace)
        except ConflictError:
            # Recorded by someone else since our read: count this one on top of theirs.
            existing = client.get(events, name, namespace)
    patch = repeat_patch(existing, now)
    if module.check_mode:
        existing.update(count=patch["count"], lastTimestamp=now)
        return existing
    return merge_patch(client, events, patch, name, namespace)


def main():
    module = k8s_module(ARGUMENT_SPEC)
    params = module.params
    problem = validate_reason(params["reason"])
    if problem:
        module.fail_json(msg=problem, reason="InvalidReason")
    action = f"Recording event {params['reason']} on {params['kind']} {params['name']}"
    try:
        client = api_client(module)
        ref = involved_object(module, client)
        events = find_resource(client, "v1", "Event")
        event = retry_on_conflict(lambda: record(module, client, events, ref))
    except Exception as exc:
        fail_from_exception(module, exc, action)
    module.exit_json(
        changed=True,
        event=event,
        name=event["metadata"]["name"],
        count=event.get("count", 1),
        reason=event["reason"],
    )


if __name__ == "__main__":
    main()
