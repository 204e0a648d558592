"""Every failure reason the package can report is one the documentation lists."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from vmdiskimage import errors

pytestmark = pytest.mark.unit

DATAPATH = Path(__file__).resolve().parents[2] / "docs" / "datapath.md"


def _reasons() -> set[str]:
    return {
        cls.reason
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.VMDiskImageError)
    }


def test_every_reason_is_documented():
    text = DATAPATH.read_text()
    section = text[text.index("`reason` is one of") :].split("\n\n", 1)[0]
    documented = set(re.findall(r"`([A-Z][A-Za-z]+)`", section))
    assert _reasons() - documented == set()
    assert documented - _reasons() - {"InternalError"} == set()


SIGNED = (
    "https://bucket.s3.amazonaws.com/blobs/sha256:ab?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20260101&X-Amz-Signature=deadbeef"
)


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (
            f"GET {SIGNED} failed",
            "GET https://bucket.s3.amazonaws.com/blobs/sha256:ab?<redacted> failed",
        ),
        # urllib3 quotes the path and query alone
        (
            "Max retries exceeded with url: /b/k?X-Goog-Signature=abc&X-Goog-Date=1 (Caused by",
            "Max retries exceeded with url: /b/k?<redacted> (Caused by",
        ),
        (
            "at 'https://a.blob.core.windows.net/c/d?sv=2024&sig=s3cr3t'",
            "at 'https://a.blob.core.windows.net/c/d?<redacted>'",
        ),
        (
            "(https://cdn.example/x?Expires=1&Signature=abc&Key-Pair-Id=K)",
            "(https://cdn.example/x?<redacted>)",
        ),
        # no URL query: left alone
        ("is this a registry? it answered 200", "is this a registry? it answered 200"),
        ("manifest repo:tag not found", "manifest repo:tag not found"),
        ("blob sha256:ab not found", "blob sha256:ab not found"),
    ],
)
def test_redact(text, redacted):
    assert errors.redact(text) == redacted


def test_error_messages_and_details_are_redacted():
    exc = errors.RegistryUnavailable(f"storage unreachable: {SIGNED}", url=SIGNED, attempts=2)
    for text in (exc.message, str(exc), str(exc.to_dict())):
        assert "deadbeef" not in text and "AKIAEXAMPLE" not in text
    assert exc.details["attempts"] == 2
