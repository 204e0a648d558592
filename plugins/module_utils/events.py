# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Kubernetes Events folded by content: one Event object per (object, type, reason, message).

Reconciles repeat themselves; instead of a new Event each time, the repeat raises the
``count`` and ``lastTimestamp`` of the Event named after what it says, as kubelet and the
client-go event recorder do.
"""

from __future__ import annotations

import hashlib
import re

EVENT_TYPES = ("Normal", "Warning")
REASON_RE = re.compile(r"^[A-Z][A-Za-z0-9]*$")
# events.k8s.io limits the note to 1 kB; kubectl shows nothing more useful beyond it.
MAX_MESSAGE = 1024
MAX_REASON = 128
# Object names are DNS subdomains of at most 253 characters; the suffix is '.' + 16 hex.
_MAX_PREFIX = 253 - 17


def validate_reason(reason):
    """Return an error sentence for a reason that is not CamelCase, else None."""
    if not REASON_RE.match(reason or ""):
        return (
            f"reason {reason!r} must be a CamelCase word (letters and digits, starting with "
            "a capital letter), such as ImageNotFound"
        )
    if len(reason) > MAX_REASON:
        return f"reason {reason!r} is longer than {MAX_REASON} characters"
    return None


def truncate_message(message):
    """The message as stored: at most MAX_MESSAGE characters, marked when cut."""
    if len(message) <= MAX_MESSAGE:
        return message
    return message[: MAX_MESSAGE - 3] + "..."


def event_name(involved_name, involved_uid, event_type, reason, message):
    """A name that is the same for the same event on the same object, and only for it."""
    digest = hashlib.sha256(
        "\0".join((involved_uid or "", event_type, reason, message)).encode("utf-8")
    ).hexdigest()[:16]
    prefix = re.sub(r"[^a-z0-9.-]", "-", involved_name.lower())[:_MAX_PREFIX].strip(".-")
    return f"{prefix or 'event'}.{digest}"


def new_event(name, namespace, involved, event_type, reason, message, component, instance, now):
    """The body of a first occurrence (core/v1 Event)."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": involved,
        "type": event_type,
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": instance,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def repeat_patch(event, now):
    """The merge patch that folds one more occurrence into ``event``."""
    return {
        "metadata": {"resourceVersion": event["metadata"]["resourceVersion"]},
        "count": int(event.get("count") or 1) + 1,
        "lastTimestamp": now,
    }
