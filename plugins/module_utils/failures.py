# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one way modules of this collection turn an exception into ``fail_json``.

Every failure carries ``msg`` (a sentence a person can act on) and ``reason`` (a CamelCase
word a role can branch on and put into an Event or a status condition), plus whatever
structured details the error knows (``status`` for API errors, sizes for sizing errors).
"""

from __future__ import annotations

import json
import traceback

from ansible_collections.vm_example.vmdiskimage.plugins.module_utils.k8s import (
    ApiError,
    ApiUnreachable,
    ConfigError,
)

try:
    from vmdiskimage.errors import VMDiskImageError, redact
except ImportError:
    # Reported by the modules that need the package (missing_required_lib).
    class VMDiskImageError(Exception):  # type: ignore[no-redef]
        """Stand-in so isinstance() works without the package."""

    def redact(text):
        """Without the package no registry URL is fetched, so none can be quoted."""
        return text


class ModuleFailure(Exception):
    """A failure detected by a module itself, with its reason and details."""

    def __init__(self, message, reason, **details):
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.details = details


# What a person can do about the usual API answers.
_API_HINTS = {
    401: "check the credentials in the kubeconfig or the K8S_AUTH_* environment",
    403: "grant the missing permission to the user or ServiceAccount running the task",
    404: "check the name, namespace and kind",
    409: "the object changed while it was being updated; run the task again",
    422: "the API server rejected the values sent",
}


def _api_error_details(exc):
    """``(status, reason, message)`` of an ApiError, from the API's Status body."""
    status = exc.status
    reason = exc.reason or "ApiError"
    message = str(reason)
    if exc.body:
        try:
            doc = json.loads(exc.body)
        except ValueError:
            message = exc.body[:500]
        else:
            if isinstance(doc, dict):
                message = doc.get("message") or message
                reason = doc.get("reason") or reason
    reason = "".join(part[:1].upper() + part[1:] for part in str(reason).split())
    return status, reason, message


def describe_exception(exc, action):
    """The ``fail_json`` keyword arguments for ``exc`` raised while doing ``action``."""
    if isinstance(exc, ModuleFailure):
        return dict(msg=exc.message, reason=exc.reason, **exc.details)
    if isinstance(exc, VMDiskImageError):
        details = exc.to_dict()
        details.pop("message", None)
        return dict(msg=f"{action}: {exc.message}", **details)
    if isinstance(exc, ApiError):
        status, reason, message = _api_error_details(exc)
        hint = _API_HINTS.get(status)
        msg = f"{action}: the Kubernetes API answered {status} {reason}: {message}"
        if hint:
            msg = f"{msg} ({hint})"
        return dict(msg=msg, reason=reason, status=status)
    if isinstance(exc, ApiUnreachable):
        return dict(
            msg=f"{action}: cannot reach the Kubernetes API server ({exc}); check the "
            "host in the kubeconfig or K8S_AUTH_HOST, and that the server is up",
            reason="ApiServerUnreachable",
        )
    if isinstance(exc, ConfigError):
        # No kubeconfig, a bad context, an exec plugin that failed, ...
        return dict(msg=f"{action}: {exc}", reason="KubernetesClientError")
    # An unexpected error may quote a pre-signed blob URL (requests and urllib3 put the
    # URL in their messages): its query string is a credential, kept out of both.
    return dict(
        msg=redact(f"{action}: unexpected {type(exc).__name__}: {exc}"),
        reason="InternalError",
        exception=redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__))),
    )


def fail_from_exception(module, exc, action):
    """Call ``module.fail_json`` with the message, reason and details of ``exc``."""
    module.fail_json(**describe_exception(exc, action))
