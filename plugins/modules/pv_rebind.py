#!/usr/bin/python
# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hand a PersistentVolume from the populator's prime PVC to the user's PVC."""

from __future__ import annotations

DOCUMENTATION = r"""
module: pv_rebind
short_description: Move a PersistentVolume from the prime PVC to the user's PVC
version_added: 0.1.0
description:
  - The last step of a volume populator, as lib-volume-populator does it - once the
    populator pod has filled the volume of the prime PVC, the PersistentVolume's
    C(spec.claimRef) is pointed at the user's PVC (namespace, name, UID and
    resourceVersion), and an annotation records where the data came from. Kubernetes then
    binds the user's PVC and marks the prime PVC C(Lost).
  - Idempotent - a PV already pointing at the user's PVC is left alone (the annotation
    is added if missing).
  - Refuses to touch a PV whose claim is neither the prime PVC nor the user's PVC.
  - Retries when the PV changes between the read and the write.
author:
  - vmdiskimage-operator maintainers (@vm-example)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - kubernetes.core.k8s_auth_options
options:
  name:
    description: Name of the PersistentVolume.
    type: str
    required: true
  prime_claim:
    description: The claim the PV is bound to now, the populator's prime PVC.
    type: dict
    required: true
    suboptions:
      namespace:
        description: Namespace of the prime PVC.
        type: str
        required: true
      name:
        description: Name of the prime PVC.
        type: str
        required: true
      uid:
        description: UID of the prime PVC; when set, the PV's claimRef must carry it too.
        type: str
  claim:
    description: The user's PVC that gets the PV.
    type: dict
    required: true
    suboptions:
      namespace:
        description: Namespace of the user's PVC.
        type: str
        required: true
      name:
        description: Name of the user's PVC.
        type: str
        required: true
      uid:
        description:
          - UID of the user's PVC. When unset, the PVC is read to learn its UID and
            resourceVersion.
        type: str
      resource_version:
        description: resourceVersion of the user's PVC, copied into the claimRef.
        type: str
  populated_from:
    description:
      - Value of the C(vm.example.com/populated-from) annotation set on the PV.
      - Defaults to C(<prime namespace>/<prime name>).
    type: str
  wait_bound:
    description:
      - Seconds to wait, after the PV points at the user's PVC, for Kubernetes to bind
        that PVC to it (usually a second or two). C(claim_bound) says whether it did.
      - C(0) returns at once. Nothing is waited for in check mode.
    type: float
    default: 0
attributes:
  check_mode:
    support: full
    details: Reports the change and the diff without writing.
  diff_mode:
    support: full
    details: The diff shows the PV's claimRef and annotation before and after.
  platform:
    platforms: posix
requirements:
  - kubernetes.core (for its connection options); the Kubernetes Python client is not used
"""

EXAMPLES = r"""
- name: Give the populated volume to the user's PVC
  vm_example.vmdiskimage.pv_rebind:
    name: "{{ __prime_pvc.spec.volumeName }}"
    prime_claim:
      namespace: vmdiskimage-populator
      name: "prime-{{ __pvc.metadata.uid }}"
      uid: "{{ __prime_pvc.metadata.uid }}"
    claim:
      namespace: "{{ __pvc.metadata.namespace }}"
      name: "{{ __pvc.metadata.name }}"
      uid: "{{ __pvc.metadata.uid }}"
      resource_version: "{{ __pvc.metadata.resourceVersion }}"
"""

RETURN = r"""
claim_ref:
  description: The PV's claimRef after the task (in check mode, as it would be).
  returned: success
  type: dict
  sample:
    apiVersion: v1
    kind: PersistentVolumeClaim
    namespace: vms
    name: fedora-41-root
    uid: 6a1c2b7d-4e5f-4a60-9b1c-2d3e4f5a6b7c
    resourceVersion: "4711"
claim_bound:
  description:
    - Whether the user's PVC was bound to the PV (its C(spec.volumeName) names it) when
      the task returned; see O(wait_bound).
  returned: success
  type: bool
  sample: true
claim:
  description:
    - The user's PVC as last read, bound or not (once O(wait_bound) is over), or null
      when it is gone. A role can go on from it without reading it again.
  returned: success
  type: dict
  sample: {metadata: {name: fedora-41-root}, spec: {volumeName: pvc-0b1f1f3b}}
volume:
  description: The PV after the task (in check mode, as it is), with its annotations.
  returned: success
  type: dict
  sample: {metadata: {annotations: {vm.example.com/populated-from: vms/fedora-41@sha256:...}}}
already_bound:
  description: Whether the PV already pointed at the user's PVC before the task.
  returned: success
  type: bool
  sample: false
reason:
  description: CamelCase reason of a failure, such as C(BoundToOtherClaim) or C(NotFound).
  returned: failure
  type: str
  sample: BoundToOtherClaim
"""

import time

from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.failures import (
    ModuleFailure,
    fail_from_exception,
)
from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.k8s import (
    api_client,
    find_resource,
    get_object,
    k8s_module,
    merge_patch,
    retry_on_conflict,
)

ANNOTATION = "vm.example.com/populated-from"

CLAIM_SPEC = dict(
    namespace=dict(type="str", required=True),
    name=dict(type="str", required=True),
    uid=dict(type="str"),
)

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    prime_claim=dict(type="dict", required=True, options=CLAIM_SPEC),
    claim=dict(
        type="dict",
        required=True,
        options=dict(CLAIM_SPEC, resource_version=dict(type="str")),
    ),
    populated_from=dict(type="str"),
    wait_bound=dict(type="float", default=0),
)

BIND_POLL_SECONDS = 0.25


def _refers_to(ref, claim):
    """Whether a claimRef names ``claim`` (the UID too, when both know it)."""
    if not ref or ref.get("namespace") != claim["namespace"] or ref.get("name") != claim["name"]:
        return False
    return not (ref.get("uid") and claim.get("uid") and ref["uid"] != claim["uid"])


def _describe(ref):
    if not ref:
        return "no claim"
    return f"claim {ref.get('namespace')}/{ref.get('name')} (uid {ref.get('uid')})"


def target_claim(module, client):
    """The user's PVC as namespace, name, uid and resourceVersion; read when not given."""
    claim = dict(module.params["claim"])
    if claim["uid"]:
        return claim
    pvcs = find_resource(client, "v1", "PersistentVolumeClaim")
    pvc = get_object(client, pvcs, claim["name"], claim["namespace"])
    if pvc is None:
        raise ModuleFailure(
            f"PVC {claim['namespace']}/{claim['name']} does not exist: the PV is only "
            "handed to an existing claim",
            "ClaimNotFound",
        )
    claim["uid"] = pvc["metadata"]["uid"]
    claim["resource_version"] = pvc["metadata"]["resourceVersion"]
    return claim


def rebind(module, client, pvs, claim):
    """Read the PV, decide, patch; return the module result."""
    params = module.params
    prime = params["prime_claim"]
    origin = params["populated_from"] or f"{prime['namespace']}/{prime['name']}"
    pv = get_object(client, pvs, params["name"])
    if pv is None:
        raise ModuleFailure(f"PersistentVolume {params['name']} does not exist", "NotFound")
    ref = pv["spec"].get("claimRef") or {}
    annotations = pv["metadata"].get("annotations") or {}
    already = _refers_to(ref, claim)
    if not already and not _refers_to(ref, prime):
        raise ModuleFailure(
            f"PersistentVolume {params['name']} is bound to {_describe(ref)}, neither the "
            f"prime PVC {prime['namespace']}/{prime['name']} nor the target PVC "
            f"{claim['namespace']}/{claim['name']}; refusing to move it",
            "BoundToOtherClaim",
            claim_ref=ref,
        )
    new_ref = ref
    if not already:
        new_ref = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": claim["namespace"],
            "name": claim["name"],
            "uid": claim["uid"],
        }
        if claim.get("resource_version"):
            new_ref["resourceVersion"] = claim["resource_version"]
    before = {"claimRef": ref, "annotations": {ANNOTATION: annotations.get(ANNOTATION)}}
    after = {"claimRef": new_ref, "annotations": {ANNOTATION: annotations.get(ANNOTATION)}}
    if not already or ANNOTATION not in annotations:
        after["annotations"][ANNOTATION] = annotations.get(ANNOTATION) or origin
    changed = before != after
    if changed and not module.check_mode:
        # claimRef is replaced whole (a merge patch would keep fields of the old claim,
        # such as its resourceVersion); the resourceVersion guards against a concurrent
        # change of the PV, answered by retry_on_conflict.
        body = {
            "metadata": {
                "resourceVersion": pv["metadata"]["resourceVersion"],
                "annotations": after["annotations"],
            },
            "spec": {"claimRef": {**{k: None for k in ref}, **new_ref}},
        }
        pv = merge_patch(client, pvs, body, params["name"])
        new_ref = pv["spec"].get("claimRef") or {}
    return dict(
        changed=changed,
        claim_ref=new_ref,
        already_bound=already,
        volume=pv,
        diff=dict(before=before, after=after),
    )


def read_claim(module, client, claim):
    """The user's PVC once it names the PV, or as it is after ``wait_bound`` seconds."""
    params = module.params
    pvcs = find_resource(client, "v1", "PersistentVolumeClaim")
    deadline = time.monotonic() + (0 if module.check_mode else max(params["wait_bound"], 0))
    while True:
        pvc = get_object(client, pvcs, claim["name"], claim["namespace"])
        if bound_to(pvc, params["name"]) or time.monotonic() >= deadline:
            return pvc
        time.sleep(BIND_POLL_SECONDS)


def bound_to(pvc, pv_name):
    """Whether ``pvc`` (or None) names the PV ``pv_name``."""
    return pvc is not None and (pvc.get("spec") or {}).get("volumeName") == pv_name


def main():
    module = k8s_module(ARGUMENT_SPEC)
    params = module.params
    action = f"Moving PersistentVolume {params['name']} to PVC {params['claim']['name']}"
    try:
        client = api_client(module)
        claim = target_claim(module, client)
        pvs = find_resource(client, "v1", "PersistentVolume")
        result = retry_on_conflict(lambda: rebind(module, client, pvs, claim))
        result["claim"] = read_claim(module, client, claim)
        result["claim_bound"] = bound_to(result["claim"], params["name"])
    except Exception as exc:
        fail_from_exception(module, exc, action)
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
