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
        ('{"auths": []}', "must be an object"),
    ],
)
def test_bad_configs(content, match):
    with pytest.raises(CredentialsError, match=match):
        parse_docker_config(content)


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"auth": _b64("nocolon")}, "no ':'"),
        ({"username": "u"}, "neither"),
        ({"password": "p"}, "neither"),
        ("a string", "not an object"),
    ],
)
def test_a_bad_entry_fails_only_the_images_it_covers(entry, match):
    config = parse_docker_config(
        json.dumps({"auths": {"bad.example": entry, "good.example": {"auth": _b64("u:p")}}})
    )
    with pytest.raises(CredentialsError, match=match):
        credentials_for("bad.example", config, "disks/fedora")
    assert credentials_for("good.example", config).username == "u"  # type: ignore[union-attr]
    assert credentials_for("other.example", config) is None


def test_an_empty_entry_is_anonymous_and_breaks_nothing():
    # What Docker Desktop writes beside "credsStore": "desktop".
    doc = {
        "auths": {"https://index.docker.io/v1/": {}, "quay.io": {"auth": _b64("q:p")}},
        "credsStore": "desktop",
    }
    config = parse_docker_config(json.dumps(doc))
    assert credentials_for("docker.io", config, "library/fedora") is None
    assert credentials_for("quay.io", config, "containerdisks/fedora").username == "q"  # type: ignore[union-attr]


# (key, image registry, image repository, matches?) as the kubelet matches them.
KEY_MATCHES = [
    ("reg.example", "reg.example", "a/b", True),
    ("https://reg.example/v2/", "reg.example", "v2x", True),  # a path prefix, as the kubelet's
    ("reg.example/team", "reg.example", "team/disk", True),
    ("reg.example/team", "reg.example", "other/disk", False),
    ("reg.example/team/disk", "reg.example", "team/disk", True),
    ("*.azurecr.io", "mine.azurecr.io", "disk", True),
    ("*.azurecr.io", "azurecr.io", "disk", False),
    ("*.azurecr.io", "a.mine.azurecr.io", "disk", False),
    ("*.*.example.io", "a.b.example.io", "disk", True),
    ("prefix.*.io", "prefix.example.io", "disk", True),
    ("*-good.example.io", "team-good.example.io", "disk", True),
    ("*.example.io/team", "sub.example.io", "team/disk", True),
    ("*.example.io/team", "sub.example.io", "disk", False),
    ("reg.example:5000", "reg.example:5000", "disk", True),
    ("reg.example:5000", "reg.example", "disk", False),
    ("reg.example", "reg.example:5000", "disk", False),
    ("REG.Example", "reg.example", "disk", True),
    ("https://index.docker.io/v1/", "docker.io", "library/fedora", True),
    ("docker.io/kubevirt", "registry-1.docker.io", "kubevirt/fedora", True),
]


@pytest.mark.parametrize(("key", "registry", "repository", "expected"), KEY_MATCHES)
def test_keys_match_images_as_the_kubelet_does(key, registry, repository, expected):
    config = parse_docker_config(json.dumps({"auths": {key: {"auth": _b64("u:p")}}}))
    assert (credentials_for(registry, config, repository) is not None) is expected


def test_the_most_specific_key_wins():
    config = parse_docker_config(
        json.dumps({
            "auths": {
                "reg.example": {"auth": _b64("all:p")},
                "reg.example/team": {"auth": _b64("team:p")},
                "*.example": {"auth": _b64("glob:p")},
            }
        })
    )  # fmt: skip
    assert credentials_for("reg.example", config, "team/disk").username == "team"  # type: ignore[union-attr]
    assert credentials_for("reg.example", config, "other/disk").username == "all"  # type: ignore[union-attr]
    assert credentials_for("x.example", config, "disk").username == "glob"  # type: ignore[union-attr]


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
