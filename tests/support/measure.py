"""Run ``vmdiskimage-populate`` as the pod does and measure what it cost.

A small interpreter starts the command and reads its usage with ``os.wait4``: that
child's alone (``RUSAGE_CHILDREN`` would mix in every tool the session ran), and not
counting the pages of the test process itself, which a child forked straight from it
shares until it execs (its ``ru_maxrss`` would start at the test's RSS).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

MiB = 1 << 20
POPULATE = Path(sys.executable).parent / "vmdiskimage-populate"
_WRAPPER = """
import json, os, sys
usage_file, timeout, argv = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
pid = os.posix_spawn(argv[0], argv, os.environ)
signal_timer = __import__("threading").Timer(timeout, os.kill, (pid, 9))
signal_timer.start()
_, status, usage = os.wait4(pid, 0)
signal_timer.cancel()
with open(usage_file, "w") as fh:
    json.dump({"maxrss": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime}, fh)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass
class Run:
    returncode: int
    peak_rss: int  # bytes
    cpu_seconds: float
    stdout: str
    stderr: str
    message: dict | None  # the termination message, parsed (None if absent)


def run_populate(args: list[str], workdir: Path, timeout: float = 120) -> Run:
    """``vmdiskimage-populate ARGS --termination-log ...`` with its peak RSS and CPU time."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "termination-log"
    out, err = workdir / "stdout", workdir / "stderr"
    usage_file = workdir / "usage.json"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                _WRAPPER,
                str(usage_file),
                str(timeout),
                str(POPULATE),
                *args,
                f"--termination-log={log}",
            ],
            stdout=stdout,
            stderr=stderr,
            check=False,
        )
    usage = json.loads(usage_file.read_text())
    text = log.read_text() if log.exists() else ""
    return Run(
        returncode=proc.returncode,
        peak_rss=usage["maxrss"] * 1024,
        cpu_seconds=usage["cpu"],
        stdout=out.read_text(errors="replace"),
        stderr=err.read_text(errors="replace"),
        message=json.loads(text) if text else None,
    )
