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

#: The populator's phases (vmdiskimage.progress) as the VMDiskImage status names them;
#: qcow2/vmdk conversion is part of Copying there.
STATUS_PHASES = {
    "ImageFetching": "ImageFetching",
    "Copying": "Copying",
    "Converting": "Copying",
    "Resizing": "Resizing",
}


def latest_progress(log_text):
    """The last progress record in a pod log, or None."""
    for line in reversed((log_text or "").splitlines()):
        if line.startswith(PROGRESS_PREFIX):
            try:
                return json.loads(line)["progress"]
            except (ValueError, KeyError, TypeError):
                continue
    return None


def status_phase(progress):
    """The status phase a running pod's latest progress record stands for.

    None when the record names no phase the status may show: the pod printed Succeeded
    and is about to end (the import is Ready only once the claim holds the volume), or a
    phase this operator does not know. Writing such a phase would be refused by the
    CRD's enum and fail the reconcile.
    """
    if not progress:
        return "ImageFetching"
    return STATUS_PHASES.get(progress.get("phase") or "ImageFetching")


#: The pod phases after which a pod never runs again.
ENDED_PHASES = ("Succeeded", "Failed")
#: What pod_phase says of a pod that is being deleted, whatever its phase.
TERMINATING = "Terminating"


def pod_phase(pod):
    """The pod's phase, or the phase it is about to reach; Terminating once deleted.

    A pod that restarts nothing is over once all its containers have terminated, and the
    API says so (containerStatuses) about a second before the kubelet moves the phase
    on: Succeeded when every container exited 0, else Failed. The claim marker
    (vmdiskimage/claim_marker.py) nudges the claim on the same rule, so the reconcile it
    starts sees the pod as ended. None when there is no pod.
    """
    if not pod:
        return None
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        # Deleted by someone (a user, an eviction, a drain): it may still finish, or be
        # killed midway; its result is not trusted, and the import starts again with a
        # new pod once this one is gone.
        return TERMINATING
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    if phase in ENDED_PHASES or (pod.get("spec") or {}).get("restartPolicy") != "Never":
        return phase
    states = [
        (s.get("state") or {}).get("terminated") for s in status.get("containerStatuses") or []
    ]
    if not states or None in states:
        return phase
    return "Succeeded" if all(s.get("exitCode") == 0 for s in states) else "Failed"


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
