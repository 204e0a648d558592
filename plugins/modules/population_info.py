#!/usr/bin/python
# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read, in one module run, everything the populator role decides a claim's next step on."""

from __future__ import annotations

DOCUMENTATION = r"""
module: population_info
short_description: Describe where the population of a PersistentVolumeClaim stands
version_added: 0.1.0
description:
  - Reads a PersistentVolumeClaim whose C(dataSourceRef) names a VMDiskImage and every
    object its population involves, in one module run - the VMDiskImage, the claim's
    StorageClass, the prime PVC C(prime-<claim uid>), the populator pod
    C(populate-<claim uid>), the pod's latest progress line or its result, and the
    PersistentVolume of a bound claim.
  - One run instead of one C(kubernetes.core.k8s_info) per object, on the collection's
    own small REST client - a C(kubernetes.core.k8s_info) run costs about a CPU-second
    (interpreter, Kubernetes client, discovery), and the operator runs this on every look
    at an import.
  - Objects that do not exist are returned as V(null); nothing is written.
author:
  - vmdiskimage-operator maintainers (@vm-example)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - kubernetes.core.k8s_auth_options
options:
  name:
    description: Name of the claim.
    type: str
    required: true
  namespace:
    description: Namespace of the claim (and of its prime PVC and pod).
    type: str
    required: true
  log_lines:
    description: Lines of the running pod's log searched for the latest progress line.
    type: int
    default: 5
  wait_end:
    description:
      - Seconds to wait for a populator pod that has not ended yet to end (or to be
        deleted), looking at it four times a second; the pod is returned as it is then.
        A short import ends within the run that started it instead of the next one.
      - C(0) reads once and returns.
    type: float
    default: 0
attributes:
  check_mode:
    support: full
    details: The module only reads; it runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - kubernetes.core (for its connection options); the Kubernetes Python client is not used
"""

EXAMPLES = r"""
# population.progress.percent then tells how far a running import is.
- name: Read where the import of PVC fedora-41-root stands
  vm_example.vmdiskimage.population_info:
    name: fedora-41-root
    namespace: vms
  register: population
"""

RETURN = r"""
claim:
  description: The claim, or null when it does not exist.
  returned: success
  type: dict
  sample: {metadata: {name: fedora-41-root, uid: 6a1c2b7d-4e5f-4a60-9b1c-2d3e4f5a6b7c}}
vmdiskimage:
  description: The VMDiskImage the claim's dataSourceRef names, or null.
  returned: success
  type: dict
  sample: {spec: {sourceImage: quay.io/containerdisks/fedora:41}}
storage_class:
  description: The claim's StorageClass, or null (no class, or it does not exist).
  returned: success
  type: dict
  sample: {volumeBindingMode: WaitForFirstConsumer}
prime_name:
  description: Name of the prime PVC, C(prime-<claim uid>).
  returned: when the claim exists
  type: str
  sample: prime-6a1c2b7d-4e5f-4a60-9b1c-2d3e4f5a6b7c
pod_name:
  description: Name of the populator pod, C(populate-<claim uid>).
  returned: when the claim exists
  type: str
  sample: populate-6a1c2b7d-4e5f-4a60-9b1c-2d3e4f5a6b7c
prime:
  description: The prime PVC, or null.
  returned: success
  type: dict
  sample: {spec: {volumeName: pvc-0b1f1f3b}}
pod:
  description: The populator pod, or null.
  returned: success
  type: dict
  sample: {status: {phase: Running}}
pod_phase:
  description:
    - The populator pod's phase, or C(Succeeded) or C(Failed) as soon as its container
      has terminated, about a second before the kubelet updates the phase itself (the pod
      restarts nothing). C(Terminating) for a pod that is being deleted, whatever its
      phase - its result is not to be trusted. Null when there is no pod.
  returned: success
  type: str
  sample: Succeeded
progress:
  description:
    - The latest progress record the running pod printed (docs/datapath.md), or null
      when it has printed none yet or is not running.
  returned: success
  type: dict
  sample: {phase: Copying, bytesDone: 1073741824, bytesTotal: 2147483648, percent: 50.0}
phase:
  description:
    - The VMDiskImage status phase a running (or pending) pod stands for, from its latest
      progress line (C(ImageFetching) before the first one; C(Converting) counts as
      C(Copying)), or null when the line names no phase the status may show - the pod
      printed C(Succeeded) and is about to end. Null when there is no pod.
  returned: success
  type: str
  sample: Copying
terminated:
  description: The state of the pod's container once it ended, or null.
  returned: success
  type: dict
  sample: {exitCode: 1, reason: Error, finishedAt: "2026-12-03T07:40:00Z"}
result:
  description:
    - The termination message of an ended pod as a mapping (C(result) Succeeded or
      Failed, C(reason), C(message), C(digest), ...), or null when there is none or it
      is not JSON.
  returned: success
  type: dict
  sample: {result: Failed, reason: ImageNotFound, message: "manifest unknown"}
assigns_uid:
  description:
    - Whether the cluster assigns pod UIDs itself, so the populator pod must not set one
      (it serves C(securitycontextconstraints.security.openshift.io), as OpenShift does;
      its restricted-v2 SCC refuses a runAsUser or fsGroup outside the namespace's range).
      Looked up only when the pod is about to be created; false otherwise.
  returned: success
  type: bool
  sample: false
volume:
  description: The PersistentVolume a bound claim is bound to, or null.
  returned: success
  type: dict
  sample: {metadata: {annotations: {vm.example.com/populated-from: vms/fedora-41@sha256:...}}}
reason:
  description: CamelCase reason of a failure, such as C(Forbidden).
  returned: failure
  type: str
  sample: Forbidden
"""

import time

from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.failures import (
    fail_from_exception,
)
from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.k8s import (
    ApiError,
    ConfigError,
    api_client,
    find_resource,
    get_object,
    k8s_module,
)
from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.population import (
    ENDED_PHASES,
    TERMINATING,
    container_terminated,
    latest_progress,
    parse_result,
    pod_phase,
    status_phase,
)

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    namespace=dict(type="str", required=True),
    log_lines=dict(type="int", default=5),
    wait_end=dict(type="float", default=0),
)

#: Seconds between two looks at a pod whose end is waited for.
WAIT_END_INTERVAL = 0.25


def pod_log(client, pods, name, namespace, lines):
    """The last lines of a pod's log ('' while its container has not started, or is gone).

    Any other error is raised: swallowing them once hid that the API server answers
    406 to ``Accept: text/plain``, and no progress was ever read.
    """
    try:
        return client.request(
            "GET",
            f"{pods.path(name=name, namespace=namespace)}/log",
            query={"tailLines": lines},
            accept="*/*",  # the logs endpoint answers 406 to text/plain alone
        )
    except ApiError as exc:
        if exc.status in (400, 404):  # "container ... is waiting to start", or deleted
            return ""
        raise


SCC_API = "security.openshift.io/v1"


def assigns_uid(client):
    """Whether the API server serves OpenShift's SecurityContextConstraints."""
    try:
        find_resource(client, SCC_API, "SecurityContextConstraints")
    except ConfigError:
        return False
    return True


def wait_for_end(client, pods, pod, seconds):
    """The pod once it has ended or is being deleted, or as it is after ``seconds`` (None
    if it went away)."""
    deadline = time.monotonic() + seconds
    meta = pod["metadata"]
    while pod is not None and pod_phase(pod) not in (*ENDED_PHASES, TERMINATING):
        if time.monotonic() + WAIT_END_INTERVAL > deadline:
            break
        time.sleep(WAIT_END_INTERVAL)
        pod = get_object(client, pods, meta["name"], meta["namespace"])
    return pod


def read(module, client):
    params = module.params
    namespace = params["namespace"]
    pvcs = find_resource(client, "v1", "PersistentVolumeClaim")
    state = dict(
        changed=False,
        claim=None,
        vmdiskimage=None,
        storage_class=None,
        prime=None,
        pod=None,
        pod_phase=None,
        progress=None,
        phase=None,
        terminated=None,
        result=None,
        volume=None,
        assigns_uid=False,
    )
    claim = get_object(client, pvcs, params["name"], namespace)
    if claim is None:
        return state
    state["claim"] = claim
    spec = claim.get("spec") or {}
    uid = claim["metadata"]["uid"]
    state["prime_name"] = f"prime-{uid}"
    state["pod_name"] = f"populate-{uid}"
    ref = spec.get("dataSourceRef") or {}
    if ref.get("apiGroup") == "vm.example.com" and ref.get("kind") == "VMDiskImage":
        vdis = find_resource(client, "vm.example.com/v1alpha1", "VMDiskImage")
        state["vmdiskimage"] = get_object(client, vdis, ref["name"], namespace)
    if spec.get("storageClassName"):
        classes = find_resource(client, "storage.k8s.io/v1", "StorageClass")
        state["storage_class"] = get_object(client, classes, spec["storageClassName"])
    state["prime"] = get_object(client, pvcs, state["prime_name"], namespace)
    pods = find_resource(client, "v1", "Pod")
    pod = get_object(client, pods, state["pod_name"], namespace)
    if pod is not None and not spec.get("volumeName"):
        pod = wait_for_end(client, pods, pod, params["wait_end"])
    state["pod"] = pod
    state["pod_phase"] = pod_phase(pod)
    if spec.get("volumeName"):
        pvs = find_resource(client, "v1", "PersistentVolume")
        state["volume"] = get_object(client, pvs, spec["volumeName"])
        return state  # bound: the import is over, its objects only need deleting (if any)
    if pod is None:
        state["assigns_uid"] = assigns_uid(client)
    else:
        state["terminated"] = container_terminated(pod)
        state["result"] = parse_result(state["terminated"])
        if state["pod_phase"] == "Running":
            text = pod_log(client, pods, state["pod_name"], namespace, params["log_lines"])
            state["progress"] = latest_progress(text)
        state["phase"] = status_phase(state["progress"])
    return state


def main():
    module = k8s_module(ARGUMENT_SPEC)
    params = module.params
    action = f"Reading the population of PVC {params['namespace']}/{params['name']}"
    try:
        state = read(module, api_client(module))
    except Exception as exc:
        fail_from_exception(module, exc, action)
    module.exit_json(**state)


if __name__ == "__main__":
    main()
