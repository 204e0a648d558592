"""vmdiskimage-populate with a pull secret that was not mounted: the operator mounts the
Secret as an optional volume, so a missing Secret must fail the import by name."""

from __future__ import annotations

import json

import pytest

from vmdiskimage import populate

pytestmark = pytest.mark.unit


def _run(tmp_path, *extra: str) -> tuple[int, dict]:
    log = tmp_path / "termination-log"
    code = populate.main(
        [
            "--source=registry.invalid/disks/fedora:41",
            f"--target={tmp_path / 'disk.img'}",
            "--target-size=1Gi",
            f"--termination-log={log}",
            f"--pull-secret={tmp_path / 'pull' / '.dockerconfigjson'}",
            *extra,
        ]
    )
    return code, json.loads(log.read_text())


def test_a_missing_pull_secret_is_named(tmp_path):
    code, message = _run(tmp_path, "--pull-secret-name=regcred")

    assert code == 1
    assert message["reason"] == "InvalidCredentials"
    assert "pull secret 'regcred' does not exist" in message["message"]
    assert "spec.pullSecretName" in message["message"]
    assert not (tmp_path / "disk.img").exists()


def test_without_the_secret_name_a_missing_file_is_a_file_error(tmp_path):
    code, message = _run(tmp_path)

    assert code == 1
    assert message["reason"] == "InvalidCredentials"
    assert "cannot read credentials file" in message["message"]
