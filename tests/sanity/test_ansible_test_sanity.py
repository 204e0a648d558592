"""ansible-test sanity passes on the collection's plugins."""

from __future__ import annotations

import pytest

from tests.sanity import ansible_test

pytestmark = pytest.mark.sanity

# The sanity tests that apply to Python plugins; each must run (and pass).
EXPECTED = {
    "ansible-doc",
    "compile",
    "import",
    "pep8",
    "pylint",
    "validate-modules",
    "yamllint",
    "runtime-metadata",
}


def test_ansible_test_sanity_passes_on_plugins():
    result = ansible_test.run(("plugins/",))
    assert result.returncode == 0, result.output[-8000:]
    missing = EXPECTED - set(result.tests_run)
    assert not missing, f"sanity tests that did not run: {sorted(missing)}\n{result.output[-4000:]}"
