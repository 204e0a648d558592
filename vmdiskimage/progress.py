"""Progress while copying, and the result in the pod's termination message.

The populator pod has no Kubernetes API access, so it reports through what the
kubelet and the API server already carry:

* progress: one JSON line on stdout every few seconds (read with ``kubectl logs
  --tail=1`` / ``kubernetes.core.k8s_log``), and the same object rewritten atomically
  in ``--progress-file`` when given;
* result: one JSON object in the termination message file (``/dev/termination-log``),
  which Kubernetes copies to ``status.containerStatuses[].state.terminated.message``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

#: Kubernetes keeps at most 4096 bytes of a termination message.
TERMINATION_MESSAGE_LIMIT = 4096


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
        return data

    def update(self, done: int, *, force: bool = False) -> None:
        self.done = done
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
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


def termination_message(result: dict[str, Any]) -> str:
    """``result`` as compact JSON within the 4096-byte limit (long messages are cut)."""
    text = json.dumps(result, separators=(",", ":"), sort_keys=True)
    if len(text.encode()) <= TERMINATION_MESSAGE_LIMIT:
        return text
    trimmed = dict(result)
    message = str(trimmed.get("message", ""))
    overflow = len(text.encode()) - TERMINATION_MESSAGE_LIMIT + 16
    trimmed["message"] = message[: max(0, len(message) - overflow)] + "..."
    trimmed = {k: v for k, v in trimmed.items() if not isinstance(v, dict | list)}
    return json.dumps(trimmed, separators=(",", ":"), sort_keys=True)[:TERMINATION_MESSAGE_LIMIT]


def write_termination_message(path: str | Path | None, result: dict[str, Any]) -> None:
    """Write the result; a missing or unwritable path is not fatal (e.g. outside a pod)."""
    if not path:
        return
    try:
        Path(path).write_text(termination_message(result))
    except OSError as exc:
        print(f"cannot write termination message to {path}: {exc}", file=sys.stderr)
