# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""Progress while copying, and the result in the pod's termination message.

The populator pod has no Kubernetes API access, so it reports through what the
kubelet and the API server already carry:

* progress: one JSON line on stdout every few seconds (read with ``kubectl logs
  --tail=1`` / ``kubernetes.core.k8s_log``), and the same object rewritten atomically
  in ``--progress-file`` when given;
* result: one JSON object in the termination message file (``/dev/termination-log``),
  which Kubernetes copies to ``status.containerStatuses[].state.terminated.message``.

Logs go to stderr, which ``kubectl logs`` interleaves with the progress lines, so a
log record is always one line: control characters in it, such as a newline in a
media type a registry sent, are written as escapes (:class:`LogFormatter`). Neither
logs, progress nor the result quote a URL's query string (a signed URL's credential
is there; see :func:`~vmdiskimage.errors.redact`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import IO, Any

from .errors import redact

#: Kubernetes keeps at most 4096 bytes of a termination message.
TERMINATION_MESSAGE_LIMIT = 4096


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_control(text: str) -> str:
    """``text`` with control characters (newlines too) written as escapes such as ``\\n``."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


class LogFormatter(logging.Formatter):
    """One line per record: the message escaped and redacted, traceback lines indented,
    escaped and redacted (other libraries log URLs too)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_control(redact(super().formatMessage(record)))

    def formatException(self, ei: Any) -> str:
        lines = super().formatException(ei).splitlines()
        return "\n".join("    " + escape_control(redact(line)) for line in lines)


def configure_logging(level: int) -> None:
    """Log to stderr through :class:`LogFormatter`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogFormatter("%(levelname)s %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


class Progress:
    """Throttled progress reports: ``update()`` is cheap to call per chunk."""

    def __init__(
        self,
        *,
        total: int | None = None,
        path: str | Path | None = None,
        stream: IO[str] | None = sys.stdout,
        interval: float = 2.0,
    ) -> None:
        self.total = total
        self.path = Path(path) if path else None
        self.stream = stream
        self.interval = interval
        self.phase = "Copying"
        self.done = 0
        #: What the import is waiting for (a busy registry), or None.
        self.waiting: str | None = None
        self.started = time.monotonic()
        self._last = float("-inf")

    def snapshot(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        data: dict[str, Any] = {
            "phase": self.phase,
            "bytesDone": self.done,
            "bytesTotal": self.total,
            "seconds": round(elapsed, 1),
        }
        if self.total:
            data["percent"] = round(min(100.0, 100.0 * self.done / self.total), 1)
        if self.waiting:
            data["waiting"] = self.waiting
        return data

    def update(self, done: int, *, force: bool = False) -> None:
        self.done = done
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            self.emit()

    def wait(self, message: str | None) -> None:
        """Report at once that the import waits (``message``), or no longer waits (None)."""
        self.waiting = redact(message) if message else None
        self.emit()

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        self.emit()

    def emit(self) -> None:
        record = self.snapshot()
        line = json.dumps({"progress": record}, separators=(",", ":"))
        if self.stream is not None:
            self.stream.write(line + "\n")
            self.stream.flush()
        if self.path is not None:
            write_atomic(self.path, json.dumps(record) + "\n")


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so readers never see half a document."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


#: Bytes of JSON each string field may take in the termination message; ``message``
#: gets the most. ``result`` and ``reason`` are ours and short, and always kept.
MESSAGE_BUDGET = 2048
FIELD_BUDGET = 512
_ESSENTIAL = ("result", "reason")
_ELLIPSIS = "..."


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _cut(text: str, budget: int) -> str:
    """``text``, shortened with ``...`` until its JSON form fits ``budget`` bytes."""
    if len(_json(text).encode()) <= budget:
        return text
    low, high = 0, len(text)  # the longest prefix that fits, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        if len(_json(text[:middle] + _ELLIPSIS).encode()) <= budget:
            low = middle
        else:
            high = middle - 1
    return text[:low] + _ELLIPSIS


def termination_message(result: dict[str, Any]) -> str:
    """``result`` as compact JSON of at most 4096 bytes, always valid and complete.

    Every string field is redacted and cut to its budget (strings come from the registry
    and the image: a tar name can be any length); if the whole is still too long, the
    largest other fields are cut further or dropped. ``result`` and ``reason`` always stay, and
    the serialized JSON itself is never cut.
    """
    fields: dict[str, Any] = {}
    for key, value in result.items():
        if key in _ESSENTIAL:
            fields[key] = _cut(redact(str(value)), 256)
        elif isinstance(value, str):
            fields[key] = _cut(redact(value), MESSAGE_BUDGET if key == "message" else FIELD_BUDGET)
        elif len(_json(value).encode()) <= FIELD_BUDGET:
            fields[key] = value
    while len(text := _json(fields).encode()) > TERMINATION_MESSAGE_LIMIT:
        others = [k for k in fields if k not in _ESSENTIAL]
        largest = max(others, key=lambda k: len(_json(fields[k]).encode()))
        size = len(_json(fields[largest]).encode())
        if isinstance(fields[largest], str) and size > 64:
            fields[largest] = _cut(fields[largest], size // 2)
        else:
            del fields[largest]
    return text.decode()


def write_termination_message(path: str | Path | None, result: dict[str, Any]) -> None:
    """Write the result; a missing or unwritable path is not fatal (e.g. outside a pod)."""
    if not path:
        return
    try:
        Path(path).write_text(termination_message(result))
    except OSError as exc:
        print(f"cannot write termination message to {path}: {exc}", file=sys.stderr)
