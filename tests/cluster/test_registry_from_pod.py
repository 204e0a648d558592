"""A test registry started on the host's bridge address is reachable from pods.

This is how the populator pod will fetch images in the cluster tier: plain HTTP, TLS with
the tests' private CA, and basic auth, all on $VMDI_BRIDGE_IP.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.cluster.kube import Cluster, run_pod
from tests.support.registry import start_registry

pytestmark = pytest.mark.cluster

# Runs in the pod: GET /v2/ anonymously, then with credentials when AUTH is set.
FETCH = """python3 - <<'PY'
import os, ssl, urllib.error, urllib.request
ctx = ssl.create_default_context(cadata=os.environ["CA"]) if os.environ["CA"] else None
def get(headers):
    req = urllib.request.Request(os.environ["URL"], headers=headers)
    try:
        return urllib.request.urlopen(req, context=ctx, timeout=10).status
    except urllib.error.HTTPError as err:
        return err.code
print("anonymous=%d" % get({}))
if os.environ["AUTH"]:
    print("authenticated=%d" % get({"Authorization": "Basic " + os.environ["AUTH"]}))
PY"""


@pytest.mark.parametrize(
    ("tls", "auth"),
    [(False, None), (True, None), (False, "basic")],
    ids=["plain", "tls-private-ca", "basic-auth"],
)
def test_pod_reaches_the_registry_on_the_bridge(
    cluster: Cluster, namespace: str, tmp_path: Path, tls: bool, auth: str | None
) -> None:
    with start_registry(tmp_path, host=cluster.bridge_ip, tls=tls, auth=auth) as registry:
        credentials = f"{registry.username}:{registry.password}" if auth else ""
        logs = run_pod(
            cluster,
            namespace,
            "fetch",
            FETCH,
            env={
                "URL": f"{registry.base_url}/v2/",
                "CA": Path(registry.ca_file).read_text() if registry.ca_file else "",
                "AUTH": base64.b64encode(credentials.encode()).decode() if auth else "",
            },
        )
    if auth:
        assert "anonymous=401" in logs
        assert "authenticated=200" in logs
    else:
        assert "anonymous=200" in logs
