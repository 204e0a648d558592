from __future__ import annotations

import base64
import json

import pytest

from vmdiskimage.auth import (
    credentials_for,
    load_docker_config,
    parse_challenge,
    parse_docker_config,
)
from vmdiskimage.errors import CredentialsError

pytestmark = pytest.mark.unit


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_dockerconfigjson_forms_and_host_matching():
    doc = {
        "auths": {
            "https://index.docker.io/v1/": {"auth": _b64("hub:pw:with:colons")},
            "quay.io": {"username": "q", "password": "p"},
            "http://10.0.0.1:5000/": {"auth": _b64("local:x")},
        }
    }
    config = parse_docker_config(json.dumps(doc))
    hub = credentials_for("docker.io", config)
    assert hub and (hub.username, hub.password) == ("hub", "pw:with:colons")
    assert credentials_for("registry-1.docker.io", config) == hub
    assert credentials_for("QUAY.IO", config).username == "q"  # type: ignore[union-attr]
    assert credentials_for("10.0.0.1:5000", config).password == "x"  # type: ignore[union-attr]
    assert credentials_for("10.0.0.1:5001", config) is None
    assert "pw" not in repr(hub)  # passwords never show up in logs


def test_legacy_dockercfg():
    config = parse_docker_config(json.dumps({"reg:5000": {"auth": _b64("u:p")}}))
    assert credentials_for("reg:5000", config).username == "u"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("not json", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"auths": {"r": {"auth": "' + _b64("nocolon") + '"}}}', "no ':'"),
        ('{"auths": {"r": {}}}', "neither"),
        ('{"auths": []}', "must be an object"),
    ],
)
def test_bad_configs(content, match):
    with pytest.raises(CredentialsError, match=match):
        parse_docker_config(content)


def test_missing_file(tmp_path):
    with pytest.raises(CredentialsError, match="cannot read"):
        load_docker_config(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("header", "scheme", "params"),
    [
        (
            'Bearer realm="https://auth.example/token",service="registry",'
            'scope="repository:a/b:pull"',
            "bearer",
            {"realm": "https://auth.example/token", "service": "registry",
             "scope": "repository:a/b:pull"},
        ),
        ('Basic realm="Registry Realm"', "basic", {"realm": "Registry Realm"}),
        ('Bearer realm="r",scope="repository:a:pull,push"', "bearer",
         {"realm": "r", "scope": "repository:a:pull,push"}),
        ("Bearer realm=unquoted, error=invalid_token", "bearer",
         {"realm": "unquoted", "error": "invalid_token"}),
    ],
)  # fmt: skip
def test_parse_challenge(header, scheme, params):
    challenge = parse_challenge(header)
    assert challenge.scheme == scheme and challenge.params == params
