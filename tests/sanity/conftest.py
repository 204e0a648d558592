"""The sanity tier: ansible-test sanity on the collection (slow on the first run)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sanity: ansible-test sanity on the collection's plugins")
