"""RegistryOptions: what a client made from them trusts, where it connects, who it is."""

from __future__ import annotations

import base64
import json

import pytest

from vmdiskimage.reference import ImageReference
from vmdiskimage.registry import RegistryClient, RegistryOptions

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("options", "verify", "scheme"),
    [
        (RegistryOptions(), True, "https"),
        (RegistryOptions(ca_file="/etc/ca.pem"), "/etc/ca.pem", "https"),
        (RegistryOptions(ca_file="/etc/ca.pem", tls_verify=False), False, "https"),
        (RegistryOptions(plain_http=True), True, "http"),
    ],
)
def test_trust_and_transport(options, verify, scheme):
    with RegistryClient("r.example:5000", options) as client:
        assert client.verify == verify
        assert client.base_url == f"{scheme}://r.example:5000"
        assert client.credentials is None


def test_credentials_come_from_the_docker_config_entry_of_the_registry(tmp_path):
    auth = base64.b64encode(b"user:secret").decode()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"r.example": {"auth": auth}}}))
    options = RegistryOptions(docker_config=config)
    with RegistryClient.for_reference(ImageReference.parse("r.example/a/b:1"), options) as client:
        assert (client.credentials.username, client.credentials.password) == ("user", "secret")
    with RegistryClient.for_reference(ImageReference.parse("other.example/a:1"), options) as c:
        assert c.credentials is None
