# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Status merging for custom resources: conditions keyed by type, Kubernetes style.

Pure functions, no API access: the status module reads the object, computes the new status
here and sends it as a merge patch.
"""

from __future__ import annotations

import copy
import re

CONDITION_STATUSES = ("True", "False", "Unknown")
CONDITION_KEYS = ("type", "status", "reason", "message")
_CAMEL_CASE = re.compile(r"^[A-Z][A-Za-z0-9]*$")


class ConditionError(ValueError):
    """A condition given to the module is malformed."""


def normalize_condition(condition):
    """Check one condition from the module arguments; return it with status as a string."""
    if not isinstance(condition, dict):
        raise ConditionError(f"each condition must be a mapping, got {condition!r}")
    unknown = sorted(set(condition) - set(CONDITION_KEYS))
    if unknown:
        raise ConditionError(
            f"condition {condition.get('type')!r} has unknown keys {', '.join(unknown)}; "
            f"allowed: {', '.join(CONDITION_KEYS)}"
        )
    ctype = condition.get("type")
    if not isinstance(ctype, str) or not _CAMEL_CASE.match(ctype):
        raise ConditionError(f"condition type {ctype!r} must be a CamelCase word such as Ready")
    status = condition.get("status")
    if isinstance(status, bool):
        status = "True" if status else "False"
    if status not in CONDITION_STATUSES:
        raise ConditionError(
            f"condition {ctype}: status {status!r} must be one of {', '.join(CONDITION_STATUSES)}"
        )
    reason = condition.get("reason")
    if reason is not None and (not isinstance(reason, str) or not _CAMEL_CASE.match(reason)):
        raise ConditionError(
            f"condition {ctype}: reason {reason!r} must be a CamelCase word such as ImageFetched"
        )
    message = condition.get("message")
    if message is not None and not isinstance(message, str):
        raise ConditionError(f"condition {ctype}: message must be a string")
    normalized = {k: v for k, v in condition.items() if v is not None}
    normalized["status"] = status
    return normalized


def merge_conditions(existing, updates, now, generation=None):
    """Merge ``updates`` into ``existing`` by type.

    ``lastTransitionTime`` is set to ``now`` only when a condition is new or its status
    flips; otherwise the old time is kept. Conditions not named in ``updates`` are kept as
    they are, in their order; new types are appended.
    """
    merged = [copy.deepcopy(c) for c in existing or [] if isinstance(c, dict)]
    by_type = {c.get("type"): c for c in merged}
    for update in updates:
        update = normalize_condition(update)
        old = by_type.get(update["type"])
        new = dict(update)
        if generation is not None:
            new.setdefault("observedGeneration", generation)
        if old is not None and old.get("status") == new["status"]:
            new.setdefault("lastTransitionTime", old.get("lastTransitionTime") or now)
        else:
            new.setdefault("lastTransitionTime", now)
        if old is None:
            merged.append(new)
        else:
            merged[merged.index(old)] = new
        by_type[new["type"]] = new
    return merged


def merge_status(existing, patch):
    """``existing`` with ``patch`` applied as a JSON merge patch (RFC 7386): None deletes."""
    result = copy.deepcopy(existing) if isinstance(existing, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_status(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def merge_patch_between(before, after):
    """The JSON merge patch (RFC 7386) that turns ``before`` into ``after``.

    Keys that ``after`` lacks become None at every depth: a nested key removed by
    merge_status must be sent as null, or the server keeps it.
    """
    patch = {key: None for key in before if key not in after}
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            nested = merge_patch_between(old, value)
            if nested:
                patch[key] = nested
        elif key not in before or old != value:
            patch[key] = copy.deepcopy(value)
    return patch


def desired_status(current, fields, conditions, now, generation, set_observed_generation=True):
    """The status to write: ``current`` merged with ``fields`` and ``conditions``."""
    fields = dict(fields or {})
    if "conditions" in fields:
        raise ConditionError("give conditions with the 'conditions' option, not inside 'status'")
    status = merge_status(current or {}, fields)
    if conditions:
        status["conditions"] = merge_conditions(
            (current or {}).get("conditions"), conditions, now, generation
        )
    if set_observed_generation and generation is not None:
        status["observedGeneration"] = generation
    return status
