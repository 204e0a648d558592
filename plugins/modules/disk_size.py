#!/usr/bin/python
# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Work out the disk size and the PVC size a VM disk needs."""

from __future__ import annotations

DOCUMENTATION = r"""
module: disk_size
short_description: Work out the final disk size and the PVC size for a VM disk
version_added: 0.1.0
description:
  - From the source disk's virtual size, the requested target size, the volume mode and
    the filesystem overhead, returns the size the disk is grown to and the PVC size to
    request for it.
  - Given the capacity of an existing PVC, also says whether that PVC can hold the disk,
    and fails (with both numbers) when it cannot.
  - Fails when the target size is below the source's virtual size.
  - Pure computation with the sizing rules of the C(vmdiskimage) package, the same the
    populator pod applies; nothing is read or written.
  - An action plugin of the same name computes it in the controller when the
    C(vmdiskimage) package is importable there, so the task starts no module process
    (the VMDiskImage role sizes every target PVC on the way to creating it).
author:
  - vmdiskimage-operator maintainers (@vm-example)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  virtual_size:
    description:
      - Virtual size of the source disk, in bytes or as a Kubernetes quantity, usually
        the C(virtual_size) returned by M(vm_example.vmdiskimage.oci_image_info).
    type: raw
    required: true
  target_size:
    description:
      - Size the disk is grown to, a Kubernetes quantity such as C(20Gi) or a number of
        bytes (C(spec.targetSize) of a VMDiskImage).
      - Unset means the disk keeps its virtual size.
    type: raw
  volume_mode:
    description:
      - Volume mode of the PVC. A C(Block) volume holds the disk itself; a C(Filesystem)
        volume holds a C(disk.img) file and needs room for the filesystem's own overhead.
    type: str
    choices: [Filesystem, Block]
    default: Filesystem
  filesystem_overhead:
    description:
      - Share of a C(Filesystem) volume kept for the filesystem itself, from 0 to below 1.
      - Unset means the package default, 0.055 (the default of KubeVirt CDI).
    type: float
  pvc_capacity:
    description:
      - Capacity of an existing PVC (C(status.capacity.storage), or its request while
        unbound), as a quantity or bytes. When set, the module checks that the disk fits.
    type: raw
attributes:
  check_mode:
    support: full
    details: Nothing is changed in any mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - vmdiskimage (this repository's Python package, C(pip install .))
"""

EXAMPLES = r"""
- name: Work out the PVC size for a 20Gi disk on a Filesystem volume
  vm_example.vmdiskimage.disk_size:
    virtual_size: "{{ __image.virtual_size }}"
    target_size: 20Gi
    volume_mode: Filesystem
  register: __sizes

- name: Check that the user's own PVC can hold the disk
  vm_example.vmdiskimage.disk_size:
    virtual_size: 10737418240
    target_size: 20Gi
    volume_mode: Block
    pvc_capacity: "{{ __pvc.status.capacity.storage | default(__pvc_request) }}"
"""

RETURN = r"""
virtual_size:
  description: Virtual size of the source disk, in bytes.
  returned: success
  type: int
  sample: 10737418240
disk_size:
  description:
    - Size the disk is grown to, in bytes - the target size (sector aligned), or the
      virtual size when no target is given.
  returned: success
  type: int
  sample: 21474836480
disk_size_quantity:
  description: RV(disk_size) as the shortest exact Kubernetes quantity.
  returned: success
  type: str
  sample: 20Gi
pvc_size:
  description: Smallest PVC request (bytes, MiB aligned) that holds the disk on this volume mode.
  returned: success
  type: int
  sample: 22724739072
pvc_size_quantity:
  description: The PVC request as a Kubernetes quantity, ready for C(resources.requests.storage).
  returned: success
  type: str
  sample: 21672Mi
pvc_capacity:
  description: Capacity of the existing PVC, in bytes.
  returned: when O(pvc_capacity) is set
  type: int
  sample: 32212254720
usable_size:
  description: Largest disk the existing PVC can hold, in bytes.
  returned: when O(pvc_capacity) is set
  type: int
  sample: 30440181760
fits:
  description: Whether the existing PVC can hold the disk (always true on success).
  returned: when O(pvc_capacity) is set
  type: bool
  sample: true
reason:
  description: Why it failed - C(TargetTooSmall), C(PVCTooSmall) or C(InvalidArgument).
  returned: failure
  type: str
  sample: PVCTooSmall
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.disk_sizes import (
    ARGUMENT_SPEC,
    HAS_VMDISKIMAGE,
    VMDISKIMAGE_IMPORT_ERROR,
    compute,
)
from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.failures import (
    fail_from_exception,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not HAS_VMDISKIMAGE:
        module.fail_json(
            msg=missing_required_lib("vmdiskimage"),
            exception=VMDISKIMAGE_IMPORT_ERROR,
            reason="MissingLibrary",
        )
    try:
        result = compute(module.params)
    except Exception as exc:
        fail_from_exception(module, exc, ACTION)
    module.exit_json(**result)


ACTION = "Working out the disk and PVC sizes"

if __name__ == "__main__":
    main()
