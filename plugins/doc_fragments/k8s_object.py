"""Options naming one Kubernetes object, shared by the modules that act on one."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  api_version:
    description:
      - API version of the object, C(group/version) or C(v1) for the core group.
    type: str
    required: true
  kind:
    description:
      - Kind of the object, such as C(VMDiskImage) or C(PersistentVolumeClaim).
      - The plural resource name and short names are accepted too.
    type: str
    required: true
  name:
    description:
      - Name of the object.
    type: str
    required: true
  namespace:
    description:
      - Namespace of the object. Leave unset for cluster-scoped kinds.
    type: str
"""
