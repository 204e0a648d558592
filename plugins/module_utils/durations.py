# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Go durations (``5s``, ``1m30s``, ``500ms``): how ansible-operator reads a requeue period."""

from __future__ import annotations

import re

GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")


def period_error(period):
    """Why ``period`` is not a Go duration, or None when it is."""
    if GO_DURATION.match(period):
        return None
    return f"period {period!r} is not a Go duration such as 5s, 1m30s or 500ms"
