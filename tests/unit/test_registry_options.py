"""RegistryOptions: what a client made from them trusts, where it connects, who it is."""

from __future__ import annotations

import base64
import json

import certifi
import pytest

from vmdiskimage.errors import InvalidArgument
from vmdiskimage.reference import ImageReference
from vmdiskimage.registry import RegistryClient, RegistryOptions

pytestmark = pytest.mark.unit


CA_FILE = certifi.where()  # any file of PEM certificates


@pytest.mark.parametrize(
    ("options", "verify", "scheme", "added_roots"),
    [
        (RegistryOptions(), True, "https", False),
        (RegistryOptions(ca_file=CA_FILE), True, "https", True),
        (RegistryOptions(ca_file="/etc/ca.pem", tls_verify=False), False, "https", False),
        (RegistryOptions(plain_http=True), True, "http", False),
    ],
)
def test_trust_and_transport(options, verify, scheme, added_roots):
    with RegistryClient("r.example:5000", options) as client:
        assert client.verify == verify
        assert client.base_url == f"{scheme}://r.example:5000"
        assert client.credentials is None
        adapter = client.session.get_adapter("https://r.example:5000/v2/")
        # The CA goes into a context of its own; requests adds its default roots to it.
        assert (getattr(adapter, "context", None) is not None) == added_roots
        if added_roots:
            assert len(adapter.context.get_ca_certs()) > 1


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
def test_unusable_ca_file_is_named(tmp_path, content):
    ca_file = tmp_path / "ca.crt"
    if content is not None:
        ca_file.write_bytes(content)
    with pytest.raises(InvalidArgument, match=f"CA bundle {ca_file} cannot be used"):
        RegistryClient("r.example", RegistryOptions(ca_file=ca_file))


def test_credentials_come_from_the_docker_config_entry_of_the_registry(tmp_path):
    auth = base64.b64encode(b"user:secret").decode()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"r.example": {"auth": auth}}}))
    options = RegistryOptions(docker_config=config)
    with RegistryClient.for_reference(ImageReference.parse("r.example/a/b:1"), options) as client:
        assert (client.credentials.username, client.credentials.password) == ("user", "secret")
    with RegistryClient.for_reference(ImageReference.parse("other.example/a:1"), options) as c:
        assert c.credentials is None
