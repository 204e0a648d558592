"""Blob GETs redirected to object storage, as registries on S3 or GCS answer them.

The registry is an HTTPS front (private CA) for a real docker-registry; the disk layer's
GET is redirected to :class:`~tests.support.objectstore.ObjectStore`, whose certificate
chains to another CA. ``REQUESTS_CA_BUNDLE`` names that CA: it stands in for the system
roots (certifi's bundle in the populator image), which a redirect to public object
storage is verified with.
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest

from tests.support.hostile import HostileRegistry
from tests.support.measure import run_populate
from tests.support.objectstore import CREDENTIAL, SIGNATURE, ObjectStore
from tests.support.pki import CertificateAuthority
from vmdiskimage import errors, push, sources
from vmdiskimage.populate import populate
from vmdiskimage.progress import termination_message
from vmdiskimage.registry import RegistryClient, RegistryOptions

pytestmark = pytest.mark.registry

REPOSITORY = "redirect/disk"


@pytest.fixture(scope="module")
def layer(plain_registry, disks) -> tuple[str, bytes]:
    """The artifact's disk layer: digest and stored bytes."""
    with plain_registry.client() as client:
        pushed = push.push(
            disks["raw"], f"{plain_registry.url}/{REPOSITORY}:1", kind=sources.ARTIFACT,
            comp="zstd", client=client,
        )  # fmt: skip
    return pushed.layer_digest, plain_registry.blob_data_path(pushed.layer_digest).read_bytes()


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory) -> CertificateAuthority:
    return CertificateAuthority.create(tmp_path_factory.mktemp("private-ca"))


@pytest.fixture
def system_roots(monkeypatch):
    """Make requests' default roots (certifi's bundle) a file the test chooses."""
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)

    def use(ca_cert: Path) -> None:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_cert))

    return use


@pytest.fixture
def redirecting(plain_registry, private_ca, layer, tmp_path):
    """An HTTPS registry (private CA) that redirects the disk layer to object storage."""
    digest, data = layer
    with (
        ObjectStore(tmp_path / "store") as store,
        HostileRegistry(plain_registry.url, tls=private_ca.issue("front", ["127.0.0.1"])) as front,
    ):
        store.objects[digest] = data
        front.answers[f"/v2/{REPOSITORY}/blobs/{digest}"] = (
            307, {"Location": store.signed_url(digest)}, b"",
        )  # fmt: skip
        yield front, store, digest


def test_ca_bundle_adds_to_the_system_roots(redirecting, private_ca, system_roots, disks, tmp_path):
    """The CA verifies the registry; the system roots still verify the storage it redirects to.

    Before the fix the CA replaced the roots: the redirect failed TLS verification.
    """
    front, store, digest = redirecting
    system_roots(store.ca.cert)
    ref = f"{front.url}/{REPOSITORY}:1"

    populate(ref, tmp_path / "out.img", registry=RegistryOptions(ca_file=private_ca.cert))

    assert (tmp_path / "out.img").read_bytes() == disks["raw"].read_bytes()
    assert [path for _, path, _ in store.seen] == [f"/bucket/{digest}"]
    with pytest.raises(errors.TLSFailure, match="CA bundle"):  # the registry needs the CA
        populate(ref, tmp_path / "no-ca.img")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# (how the storage fails, the reason, what the message says about it)
FAILURES = [
    ("untrusted", "TLSVerificationFailed", "TLS verification of 127.0.0.1:"),
    ("unreachable", "RegistryUnavailable", "unreachable"),
    ("expired", "AccessDenied", "HTTP 403"),
    ("refused", "RegistryError", "HTTP 400"),
]


@pytest.mark.parametrize(("failure", "reason", "said"), FAILURES, ids=[f[0] for f in FAILURES])
def test_signed_urls_never_appear_in_messages(
    redirecting, private_ca, system_roots, caplog, failure, reason, said, tmp_path
):
    """The storage fails in each way a message may quote the URL or the signed request.

    Before the fix the TLS and connection errors quoted the URL with its query string,
    and an error answer's body (S3 quotes the signed request) went into the message.
    """
    front, store, digest = redirecting
    if failure != "untrusted":
        system_roots(store.ca.cert)
    if failure == "unreachable":
        url = store.signed_url(digest).replace(str(store.server_address[1]), str(_closed_port()))
        front.answers[f"/v2/{REPOSITORY}/blobs/{digest}"] = (307, {"Location": url}, b"")
    elif failure == "expired":
        store.failure = (403, "AccessDenied")
    elif failure == "refused":
        store.failure = (400, "SignatureDoesNotMatch")
    caplog.set_level(logging.INFO)
    options = RegistryOptions(ca_file=private_ca.cert)
    client = RegistryClient(front.url, options, backoff=0.01, retries=1)

    with pytest.raises(errors.VMDiskImageError) as exc:
        populate(f"{front.url}/{REPOSITORY}:1", tmp_path / "out.img", client=client)
    client.close()

    assert exc.value.reason == reason
    assert said in exc.value.message and "redirected" in exc.value.message
    shown = [exc.value.message, termination_message(exc.value.to_dict()), caplog.text]
    for text in shown:
        assert SIGNATURE not in text and CREDENTIAL not in text
    assert "X-Amz-" not in exc.value.message


def test_signed_urls_never_reach_the_pod_log(redirecting, private_ca, tmp_path):
    """The command as the pod runs it: stderr, stdout and the termination message."""
    front, _, _ = redirecting  # the storage is not trusted: its URL lands in a TLS error
    run = run_populate(
        [f"--source={front.url}/{REPOSITORY}:1", f"--target={tmp_path / 'out.img'}",
         f"--ca-file={private_ca.cert}"],
        tmp_path / "run",
    )  # fmt: skip

    assert run.returncode == 1 and run.message["reason"] == "TLSVerificationFailed"
    for text in (run.stderr, run.stdout, json.dumps(run.message)):
        assert SIGNATURE not in text and CREDENTIAL not in text
    assert "?<redacted>" in run.message["message"]
