# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a populator pod reports, read from its log and its termination message.

Pure functions over the pod object and log text (the formats are those of
``vmdiskimage.progress``), so they are tested without a cluster.
"""

from __future__ import annotations

import json

PROGRESS_PREFIX = '{"progress"'


def latest_progress(log_text):
    """The last progress record in a pod log, or None."""
    for line in reversed((log_text or "").splitlines()):
        if line.startswith(PROGRESS_PREFIX):
            try:
                return json.loads(line)["progress"]
            except (ValueError, KeyError, TypeError):
                continue
    return None


def container_terminated(pod):
    """The terminated state of the pod's first container, or None."""
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
    return ((statuses[0] if statuses else {}).get("state") or {}).get("terminated")


def parse_result(terminated):
    """The JSON termination message as a dict, or None."""
    message = (terminated or {}).get("message") or ""
    try:
        result = json.loads(message)
    except ValueError:
        return None
    return result if isinstance(result, dict) else None
