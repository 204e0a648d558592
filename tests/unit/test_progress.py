from __future__ import annotations

import io
import json
import logging

import pytest

from vmdiskimage.progress import (
    TERMINATION_MESSAGE_LIMIT,
    LogFormatter,
    Progress,
    escape_control,
    termination_message,
)

pytestmark = pytest.mark.unit


def test_progress_lines_and_file(tmp_path):
    out = io.StringIO()
    progress = Progress(total=1000, path=tmp_path / "p.json", stream=out, interval=3600)
    progress.update(10)  # first update always reports
    progress.update(500)  # throttled
    progress.update(1000, force=True)
    lines = [json.loads(line)["progress"] for line in out.getvalue().splitlines()]
    assert [x["bytesDone"] for x in lines] == [10, 1000]
    assert lines[-1]["percent"] == 100.0 and lines[-1]["bytesTotal"] == 1000
    assert json.loads((tmp_path / "p.json").read_text())["bytesDone"] == 1000
    progress.set_phase("Resizing")
    assert json.loads((tmp_path / "p.json").read_text())["phase"] == "Resizing"


def test_termination_message_fits_4096_bytes():
    small = {"result": "Failed", "reason": "X", "message": "short"}
    assert json.loads(termination_message(small)) == small
    big = {"result": "Failed", "reason": "DigestMismatch", "message": "é" * 5000, "detail": [1]}
    text = termination_message(big)
    assert len(text.encode()) <= TERMINATION_MESSAGE_LIMIT
    parsed = json.loads(text)
    assert parsed["reason"] == "DigestMismatch" and parsed["message"].endswith("...")


@pytest.mark.parametrize(
    "result",
    [
        {
            "result": "Failed",
            "reason": "UnsafeDiskEntry",
            "message": "x" * 5000,
            "path": "p" * 5000,
        },
        {"result": "Failed", "reason": "R", **{f"field{i}": '\n"' * 300 for i in range(40)}},
        {"result": "Failed", "reason": "R", "message": "\u2603" * 3000, "list": ["a" * 100] * 50},
        {"result": "Failed" * 100, "reason": "R" * 1000, "message": "m"},
    ],
    ids=["long-path-detail", "many-escaped-fields", "non-ascii-and-list", "long-essentials"],
)
def test_termination_message_is_always_valid_json(result):
    text = termination_message(result)
    assert len(text.encode()) <= TERMINATION_MESSAGE_LIMIT
    parsed = json.loads(text)
    for key in ("result", "reason"):
        assert result[key].startswith(parsed[key].removesuffix("..."))
    assert ("message" in parsed) == ("message" in result)


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain text", "plain text"),
        ('a\n{"progress":{}}', 'a\\n{"progress":{}}'),
        ("cr\rtab\tesc\x1b[2K", "cr\\rtab\\tesc\\x1b[2K"),
        ("nel\x85 ls\u2028", "nel\\x85 ls\\u2028"),
        ("é ünïcode", "é ünïcode"),
    ],
)
def test_escape_control(text, escaped):
    assert escape_control(text) == escaped


def test_log_formatter_keeps_a_record_on_one_line():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("test-log-formatter")
    logger.addHandler(handler)
    try:
        logger.error("bad media type %s", 'x\n{"progress":{"phase":"Succeeded"}}')
        try:
            raise ValueError("line one\nline two")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[0] == 'ERROR bad media type x\\n{"progress":{"phase":"Succeeded"}}'
    assert all(line.startswith(("ERROR ", "    ")) for line in lines)


SIGNED = "https://storage.example/b/k?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=deadbeef"


def test_signed_urls_leave_no_trace_in_logs_progress_or_result():
    """Whatever quotes a URL (a library's log line, a traceback, a wait, the result)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("test-log-redaction")
    logger.addHandler(handler)
    try:
        logger.warning("GET %s failed", SIGNED)
        try:
            raise OSError(f"connection to {SIGNED} reset")
        except OSError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    lines = io.StringIO()
    progress = Progress(stream=lines, interval=3600)
    progress.wait(f"storage at {SIGNED} answered 503; waiting 1 s")
    result = termination_message(
        {"result": "Failed", "reason": "X", "message": SIGNED, "at": SIGNED}
    )
    for text in (stream.getvalue(), lines.getvalue(), result):
        assert "deadbeef" not in text and "AKIAEXAMPLE" not in text
        assert "https://storage.example/b/k?<redacted>" in text
