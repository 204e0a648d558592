"""Every source file says which of the project's two licenses it is under (README, License)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
GPL = "SPDX-License-Identifier: GPL-3.0-or-later"
APACHE = "SPDX-License-Identifier: Apache-2.0"


def _header(path: Path) -> str:
    return "\n".join(path.read_text().splitlines()[:20])


@pytest.mark.parametrize(
    "path", sorted(ROOT.glob("plugins/**/*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_plugins_are_gpl_3_or_later(path: Path):
    header = _header(path)
    assert GPL in header, f"{path}: no '{GPL}' in the first 20 lines"
    # What ansible-test's validate-modules looks for (missing-gplv3-license).
    assert "GNU General Public License" in header and "v3.0" in header


@pytest.mark.parametrize(
    "path", sorted(ROOT.glob("vmdiskimage/**/*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_package_is_apache_2(path: Path):
    assert APACHE in _header(path), f"{path}: no '{APACHE}' in the first 20 lines"


def test_galaxy_yml_and_license_texts_name_both_licenses():
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    assert galaxy["license"] == ["GPL-3.0-or-later", "Apache-2.0"]
    for spdx in galaxy["license"]:
        assert (ROOT / "LICENSES" / f"{spdx}.txt").is_file()
    assert "GNU GENERAL PUBLIC LICENSE" in (ROOT / "LICENSES/GPL-3.0-or-later.txt").read_text()
    assert "Apache License" in (ROOT / "LICENSES/Apache-2.0.txt").read_text()


def test_no_sanity_ignore_waives_the_gpl_header():
    ignore = ROOT / "tests" / "sanity" / "ignore-2.19.txt"
    text = ignore.read_text() if ignore.exists() else ""
    assert "missing-gplv3-license" not in text
