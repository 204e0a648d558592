# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Kubernetes access shared by the modules: kubernetes.core's auth options and client.

The modules take the same connection options (and K8S_AUTH_* environment variables) as
kubernetes.core modules and get their client from kubernetes.core, so they work wherever
kubernetes.core.k8s works, including behind the ansible-operator proxy.
"""

from __future__ import annotations

import copy
import time

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule

try:
    from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

    HAS_KUBERNETES = True
except ImportError:
    HAS_KUBERNETES = False

    class ConflictError(Exception):  # type: ignore[no-redef]
        """Stand-in when the kubernetes client is missing (reported at module start)."""

    class NotFoundError(Exception):  # type: ignore[no-redef]
        """Stand-in when the kubernetes client is missing (reported at module start)."""


# Identifies one object; documented by the vm_example.vmdiskimage.k8s_object doc fragment.
OBJECT_ARG_SPEC = dict(
    api_version=dict(type="str", required=True),
    kind=dict(type="str", required=True),
    name=dict(type="str", required=True),
    namespace=dict(type="str"),
)

# Update attempts when the object keeps changing between our read and our write.
CONFLICT_ATTEMPTS = 5

MERGE_PATCH = "application/merge-patch+json"


def with_auth(spec):
    """``spec`` plus kubernetes.core's connection options (kubeconfig, host, api_key, ...)."""
    merged = copy.deepcopy(AUTH_ARG_SPEC)
    merged.update(spec)
    return merged


def k8s_module(argument_spec, **kwargs):
    """An AnsibleModule that fails with missing_required_lib without the kubernetes client."""
    return AnsibleK8SModule(
        argument_spec=with_auth(argument_spec),
        supports_check_mode=True,
        check_pyyaml=False,
        **kwargs,
    )


def api_client(module):
    """A kubernetes.core client configured from the module's auth options and K8S_AUTH_*."""
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import (
        get_api_client,
    )

    return get_api_client(module=module)


def find_resource(client, api_version, kind):
    """The API resource for ``kind`` in ``api_version`` (kind, plural or short name)."""
    return client.resource(kind, api_version)


def get_object(client, resource, name, namespace=None):
    """The object as a dict, or None when it does not exist."""
    try:
        return client.get(resource, name=name, namespace=namespace).to_dict()
    except NotFoundError:
        return None


def merge_patch(client, resource, body, name, namespace=None):
    """Merge-patch ``resource`` (or a subresource such as ``resource.status``)."""
    return client.client.patch(
        resource, body=body, name=name, namespace=namespace, content_type=MERGE_PATCH
    ).to_dict()


def retry_on_conflict(update, attempts=CONFLICT_ATTEMPTS, pause=0.2):
    """Run ``update()`` (which reads then writes) again when the write hits a 409 Conflict."""
    for attempt in range(1, attempts + 1):
        try:
            return update()
        except ConflictError:
            if attempt == attempts:
                raise
            time.sleep(pause * attempt)
    raise AssertionError("unreachable")


def now_rfc3339():
    """The current UTC time as Kubernetes writes it (second precision, Z suffix)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
