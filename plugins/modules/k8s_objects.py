#!/usr/bin/python
# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Create, apply, patch, delete or list Kubernetes objects in one light module run."""

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_objects
short_description: Create, apply, patch, delete or list Kubernetes objects, cheaply
version_added: 0.1.0
description:
  - Writes or reads a list of objects in one module run on the collection's small REST
    client. It does the few things the operator's roles need of C(kubernetes.core.k8s)
    and C(kubernetes.core.k8s_info), at a fraction of their cost per run (no Kubernetes
    Python client to import, no discovery of every API group), which adds up over the
    dozen runs of every import.
  - O(state=present) creates each object that does not exist and leaves existing ones
    as they are (it does not update them).
  - O(state=applied) sends each object as a server-side apply by O(field_manager).
  - O(state=patched) merge-patches each object with its definition, or applies
    O(json_patch) to the one object named.
  - O(state=absent) deletes each object; objects already gone are fine.
  - O(state=listed) lists the objects of O(kind) in O(namespace) (all namespaces when
    unset), optionally filtered by O(label_selector); with O(name), only the object of
    that name (none when it does not exist).
author:
  - vmdiskimage-operator maintainers (@vm-example)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - kubernetes.core.k8s_auth_options
options:
  state:
    description: What to do with the objects.
    type: str
    choices: [present, applied, patched, absent, listed]
    default: present
  definitions:
    description:
      - The objects, each with C(apiVersion), C(kind), C(metadata.name) and, for namespaced
        kinds, C(metadata.namespace). For O(state=absent) that is all that is read.
      - Required unless O(state=listed).
    type: list
    elements: dict
    default: []
  json_patch:
    description:
      - With O(state=patched), a JSON patch (RFC 6902) applied to the single object of
        O(definitions) instead of a merge patch. A failed C(test) operation fails the task.
    type: list
    elements: dict
  field_manager:
    description: Field manager of a server-side apply.
    type: str
    default: vmdiskimage-operator
  force_conflicts:
    description: Take over fields that another manager owns in a server-side apply.
    type: bool
    default: false
  wait_bound:
    description:
      - With O(state=present) or O(state=applied), seconds to wait for each
        PersistentVolumeClaim among O(definitions) to be C(Bound) before the next
        definition is written. A pod given after its claim is then created with a bound
        claim, which the scheduler places at once (a pod that meets an unbound claim is
        put aside and may wait minutes for its next try).
      - A claim still unbound after the wait is named in RV(unbound); the next
        definitions are written anyway. C(0) does not wait; nothing waits in check mode.
    type: float
    default: 0
  api_version:
    description: With O(state=listed), API version of the kind to list.
    type: str
    default: v1
  kind:
    description: With O(state=listed), the kind to list.
    type: str
  namespace:
    description: With O(state=listed), the namespace to list (all when unset).
    type: str
  label_selector:
    description: With O(state=listed), a label selector such as C(app=web,tier!=db).
    type: str
  name:
    description:
      - With O(state=listed), read the one object of this name (in O(namespace) for a
        namespaced kind) instead of a list; RV(resources) is empty when it does not
        exist. Not combined with O(label_selector).
    type: str
attributes:
  check_mode:
    support: full
    details: >-
      Nothing is written. O(state=applied) and O(state=patched) send the request with
      C(dryRun=All), so the API server validates it and returns the object as it would be,
      and C(changed) says whether that differs from the stored object; O(state=present)
      reports a change when the object does not exist; O(state=absent) when it does.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - kubernetes.core (for its connection options); the Kubernetes Python client is not used
notes:
  - Objects are written in the order given, so a PVC given before the pod that mounts it
    exists first.
"""

EXAMPLES = r"""
- name: Create the prime PVC and the populator pod unless they exist
  vm_example.vmdiskimage.k8s_objects:
    definitions:
      - "{{ lookup('ansible.builtin.template', 'prime_pvc.yaml.j2') | from_yaml }}"
      - "{{ lookup('ansible.builtin.template', 'populator_pod.yaml.j2') | from_yaml }}"

- name: Label a claim
  vm_example.vmdiskimage.k8s_objects:
    state: patched
    definitions:
      - apiVersion: v1
        kind: PersistentVolumeClaim
        metadata:
          name: fedora-41-root
          namespace: vms
          labels: {vm.example.com/populate: "true"}

- name: Delete the populator pod
  vm_example.vmdiskimage.k8s_objects:
    state: absent
    definitions:
      - {apiVersion: v1, kind: Pod, metadata: {name: populate-0c3e, namespace: vms}}

- name: Read a StorageClass, if it exists
  vm_example.vmdiskimage.k8s_objects:
    state: listed
    api_version: storage.k8s.io/v1
    kind: StorageClass
    name: hostpath
  register: storage_class

- name: List the PVCs of a namespace
  vm_example.vmdiskimage.k8s_objects:
    state: listed
    kind: PersistentVolumeClaim
    namespace: vms
  register: pvcs
"""

RETURN = r"""
results:
  description:
    - One entry per definition, in order - the object as the API server returned it
      (C(null) for O(state=absent) and for an object that does not exist).
    - With O(state=present), an object that existed is returned as it is.
  returned: success, unless O(state=listed)
  type: list
  elements: dict
  sample: [{metadata: {name: prime-0c3e, namespace: vms}, kind: PersistentVolumeClaim}]
resources:
  description: With O(state=listed), the objects listed.
  returned: success, with O(state=listed)
  type: list
  elements: dict
  sample: [{metadata: {name: fedora-41-root, namespace: vms}}]
unbound:
  description: Claims that O(wait_bound) waited for in vain, as C(namespace/name).
  returned: success, unless O(state=listed)
  type: list
  elements: str
  sample: []
created:
  description: Names of the objects created, as C(Kind/name).
  returned: success
  type: list
  elements: str
  sample: [PersistentVolumeClaim/prime-0c3e, Pod/populate-0c3e]
reason:
  description: CamelCase reason of a failure, such as C(Forbidden) or C(Conflict).
  returned: failure
  type: str
  sample: Forbidden
"""

import time

from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.failures import (
    ModuleFailure,
    fail_from_exception,
)
from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.k8s import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    ConflictError,
    NotFoundError,
    api_client,
    find_resource,
    get_object,
    k8s_module,
)

BIND_POLL_SECONDS = 0.25

ARGUMENT_SPEC = dict(
    state=dict(
        type="str",
        choices=["present", "applied", "patched", "absent", "listed"],
        default="present",
    ),
    definitions=dict(type="list", elements="dict", default=[]),
    json_patch=dict(type="list", elements="dict"),
    field_manager=dict(type="str", default="vmdiskimage-operator"),
    force_conflicts=dict(type="bool", default=False),
    api_version=dict(type="str", default="v1"),
    kind=dict(type="str"),
    namespace=dict(type="str"),
    label_selector=dict(type="str"),
    name=dict(type="str"),
    wait_bound=dict(type="float", default=0),
)


def identify(definition):
    """``(apiVersion, kind, name, namespace)`` of a definition, or a ModuleFailure."""
    meta = definition.get("metadata") or {}
    missing = [
        key
        for key, value in (
            ("apiVersion", definition.get("apiVersion")),
            ("kind", definition.get("kind")),
            ("metadata.name", meta.get("name")),
        )
        if not value
    ]
    if missing:
        raise ModuleFailure(
            f"a definition lacks {', '.join(missing)}: {str(definition)[:200]}",
            "InvalidDefinition",
        )
    return definition["apiVersion"], definition["kind"], meta["name"], meta.get("namespace")


def differs(existing, would_be):
    """Whether a dry-run result changes the stored object (bookkeeping fields aside)."""
    if existing is None:
        return True

    def content(obj):
        meta = {
            key: value
            for key, value in obj.get("metadata", {}).items()
            if key not in ("managedFields", "resourceVersion", "generation")
        }
        return {**obj, "metadata": meta}

    return content(existing) != content(would_be)


def write(module, client, definition):
    """Do ``state`` to one object; returns ``(object or None, changed, created)``."""
    params = module.params
    state = params["state"]
    api_version, kind, name, namespace = identify(definition)
    resource = find_resource(client, api_version, kind)
    if resource.namespaced and not namespace:
        raise ModuleFailure(f"{kind} {name}: give metadata.namespace", "InvalidDefinition")
    if state == "absent":
        if module.check_mode:
            return None, get_object(client, resource, name, namespace) is not None, False
        try:
            client.delete(resource, name, namespace)
        except NotFoundError:
            return None, False, False
        return None, True, False
    if state == "applied":
        query = {"fieldManager": params["field_manager"]}
        if params["force_conflicts"]:
            query["force"] = "true"
        if module.check_mode:
            existing = get_object(client, resource, name, namespace)
            would_be = client.patch(
                resource, definition, name, namespace, APPLY_PATCH, dryRun="All", **query
            )
            return would_be, differs(existing, would_be), existing is None
        applied = client.patch(resource, definition, name, namespace, APPLY_PATCH, **query)
        return applied, True, False
    if state == "patched":
        existing = get_object(client, resource, name, namespace)
        if existing is None:
            raise ModuleFailure(f"{kind} {namespace or ''}/{name} does not exist", "NotFound")
        if params["json_patch"] is not None:
            if not params["json_patch"]:
                return existing, False, False
            body, content_type = params["json_patch"], JSON_PATCH
        else:
            body, content_type = definition, MERGE_PATCH
        if module.check_mode:
            would_be = client.patch(resource, body, name, namespace, content_type, dryRun="All")
            return would_be, differs(existing, would_be), False
        patched = client.patch(resource, body, name, namespace, content_type)
        changed = patched["metadata"].get("resourceVersion") != existing["metadata"].get(
            "resourceVersion"
        )
        return patched, changed, False
    # present: create unless it exists
    existing = get_object(client, resource, name, namespace)
    if existing is not None:
        return existing, False, False
    if module.check_mode:
        return definition, True, True
    try:
        return client.create(resource, definition, namespace), True, True
    except ConflictError:
        # Created by someone else since our read (a concurrent reconcile): theirs stands.
        return get_object(client, resource, name, namespace), False, False


def run(module, client):
    params = module.params
    if params["state"] == "listed":
        if not params["kind"]:
            raise ModuleFailure("state=listed needs kind", "InvalidArguments")
        resource = find_resource(client, params["api_version"], params["kind"])
        if params["name"]:
            if params["label_selector"]:
                raise ModuleFailure(
                    "name and label_selector do not go together", "InvalidArguments"
                )
            if resource.namespaced and not params["namespace"]:
                raise ModuleFailure(
                    f"{resource.kind} {params['name']}: give namespace", "InvalidArguments"
                )
            found = get_object(client, resource, params["name"], params["namespace"])
            items = [found] if found is not None else []
        else:
            query = {"labelSelector": params["label_selector"]} if params["label_selector"] else {}
            items = client.get(resource, None, params["namespace"], **query).get("items") or []
        for item in items:  # a list's items carry neither; k8s_info adds them too
            item.setdefault("apiVersion", resource.api_version)
            item.setdefault("kind", resource.kind)
        return dict(changed=False, resources=items, created=[])
    if not params["definitions"]:
        raise ModuleFailure(f"state={params['state']} needs definitions", "InvalidArguments")
    if params["json_patch"] is not None and (
        params["state"] != "patched" or len(params["definitions"]) != 1
    ):
        raise ModuleFailure(
            "json_patch goes with state=patched and exactly one definition", "InvalidArguments"
        )
    results, created, unbound, changed = [], [], [], False
    for definition in params["definitions"]:
        obj, obj_changed, obj_created = write(module, client, definition)
        if waits_for_binding(module, definition):
            obj = wait_bound(client, obj, params["wait_bound"])
            if (obj.get("status") or {}).get("phase") != "Bound":
                unbound.append(f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}")
        results.append(obj)
        changed = changed or obj_changed
        if obj_created:
            created.append(f"{definition['kind']}/{definition['metadata']['name']}")
    return dict(changed=changed, results=results, created=created, unbound=unbound)


def waits_for_binding(module, definition):
    params = module.params
    return (
        params["wait_bound"] > 0
        and params["state"] in ("present", "applied")
        and not module.check_mode
        and definition["kind"] == "PersistentVolumeClaim"
        and definition["apiVersion"] == "v1"
    )


def wait_bound(client, claim, timeout):
    """The claim once Bound, or as it is after ``timeout`` seconds."""
    pvcs = find_resource(client, "v1", "PersistentVolumeClaim")
    deadline = time.monotonic() + timeout
    meta = claim["metadata"]
    while (claim.get("status") or {}).get("phase") != "Bound" and time.monotonic() < deadline:
        time.sleep(BIND_POLL_SECONDS)
        claim = get_object(client, pvcs, meta["name"], meta.get("namespace")) or claim
    return claim


def main():
    module = k8s_module(ARGUMENT_SPEC)
    action = f"Kubernetes objects ({module.params['state']})"
    try:
        client = api_client(module)
        result = run(module, client)
    except Exception as exc:
        fail_from_exception(module, exc, action)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
