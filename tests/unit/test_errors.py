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
