#!/usr/bin/env python3
"""Print the hardening table: case, expected, observed, pass/fail.

The hardening tests (tests/cluster/test_hardening.py, marker `hardening`) append one
JSON line per case to build/hardening-table.jsonl (or $HARDENING_TABLE); `make
hardening` empties it, runs them on the local node and calls this script.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    path = Path(os.environ.get("HARDENING_TABLE", ROOT / "build" / "hardening-table.jsonl"))
    if not path.is_file():
        print(f"no table at {path}: run `make hardening` first", file=sys.stderr)
        return 1
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    print("| case | expected | observed | result |")
    print("|---|---|---|---|")
    for row in rows:
        cells = [row.get(k, "").replace("|", "/").replace("\n", " ") for k in
                 ("case", "expected", "observed", "result")]  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    failed = [row["case"] for row in rows if row.get("result") != "pass"]
    summary = f"{len(rows) - len(failed)} of {len(rows)} cases pass"
    print("\n" + (summary if not failed else summary + "; failing:\n" + textwrap.indent(
        "\n".join(failed), "  ")))  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
