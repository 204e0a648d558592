"""Retry-After parsing and the wait it leads to (pure logic; the registry tier runs it)."""

from __future__ import annotations

import email.utils

import pytest

from vmdiskimage import errors
from vmdiskimage.progress import Progress
from vmdiskimage.registry import RETRY_AFTER_CAP, RegistryClient, retry_after

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),  # a date past: now
        (None, None),
        ("", None),
        ("-5", None),
        ("soon", None),
        ("1.5", None),  # delta-seconds are whole digits
    ],
)
def test_retry_after(header, seconds):
    assert retry_after(header, now=NOW) == seconds


def test_wait_is_capped_reported_and_budgeted(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr("vmdiskimage.registry.time.sleep", slept.append)
    told: list[str | None] = []
    client = RegistryClient("r.example", max_wait=100, on_wait=told.append, backoff=0.5)
    client._wait_as_told(429, 3600, "blob sha256:ab")
    client._wait_as_told(503, 0, "blob sha256:ab")
    assert slept == [RETRY_AFTER_CAP, 0.5]  # an hour is cut; "0" does not spin
    assert told[1] is None and told[3] is None
    assert "answered HTTP 429 (Too Many Requests) for blob sha256:ab; waiting 60 s" in told[0]
    assert "HTTP 503 (Service Unavailable)" in told[2]
    with pytest.raises(errors.RegistryUnavailable, match="waited 60 s in all"):
        client._wait_as_told(429, 60, "blob sha256:ab")
    assert len(slept) == 2


def test_progress_says_what_it_waits_for():
    progress = Progress(stream=None)
    progress.wait("registry busy")
    assert progress.snapshot()["waiting"] == "registry busy"
    progress.wait(None)
    assert "waiting" not in progress.snapshot()
