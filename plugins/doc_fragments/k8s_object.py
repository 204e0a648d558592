# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
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
