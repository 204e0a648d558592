"""The modules' REST client: connection options, kubeconfig users, requests and errors.

Requests go to a fake API server on loopback (plain HTTP) that records what it was sent;
the cluster tier runs the same client against the real API server and the operator's
proxy.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from tests.module_harness import ansible_env, module_utils, run_module

pytestmark = pytest.mark.unit

k8s = module_utils("k8s")

CORE = {
    "resources": [
        {"name": "pods", "kind": "Pod", "namespaced": True, "singularName": "pod"},
        {"name": "pods/log", "kind": "Pod", "namespaced": True},
        {
            "name": "persistentvolumeclaims",
            "kind": "PersistentVolumeClaim",
            "namespaced": True,
            "shortNames": ["pvc"],
        },
        {
            "name": "persistentvolumeclaims/status",
            "kind": "PersistentVolumeClaim",
            "namespaced": True,
        },
        {"name": "persistentvolumes", "kind": "PersistentVolume", "namespaced": False},
    ]
}


class FakeApi(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[dict]] = []
    objects: ClassVar[dict[str, dict]] = {}

    def log_message(self, *args):
        pass

    def _answer(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": self.headers,
                "body": body,
                "connection": id(self.connection),
            }
        )
        if self.path == "/api/v1":
            return self._answer(200, CORE)
        if self.command == "POST":
            return self._answer(409, {"kind": "Status", "reason": "AlreadyExists"})
        stored = self.objects.get(self.path.split("?")[0])
        if self.command == "PATCH" and "dryRun=All" in self.path and stored is not None:
            # What a dry run answers: the stored object with the (merge) patch applied.
            return self._answer(200, {**stored, **json.loads(body)})
        if self.path in self.objects:
            return self._answer(200, self.objects[self.path])
        return self._answer(404, {"kind": "Status", "reason": "NotFound", "message": "nope"})

    do_GET = do_POST = do_PATCH = do_DELETE = _handle


@pytest.fixture
def api():
    FakeApi.seen = []
    FakeApi.objects = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def no_ambient_config(monkeypatch, tmp_path):
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith("K8S_AUTH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def kubeconfig(tmp_path: Path, server: str, user: dict, cluster: dict | None = None) -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "ctx",
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": "u", "user": user}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_token_user_and_current_context(tmp_path, api):
    conn, _ = k8s.connection_from({"kubeconfig": kubeconfig(tmp_path, api, {"token": "t0k"})})
    assert conn.server == api
    assert conn.headers["Authorization"] == "Bearer t0k"


def test_token_file_is_read_relative_to_the_kubeconfig(tmp_path, api):
    (tmp_path / "token").write_text("from-file\n")
    conn, _ = k8s.connection_from({"kubeconfig": kubeconfig(tmp_path, api, {"tokenFile": "token"})})
    assert conn.headers["Authorization"] == "Bearer from-file"


def test_basic_auth_user_as_the_operator_proxy_writes_it(tmp_path, api):
    conn, _ = k8s.connection_from(
        {"kubeconfig": kubeconfig(tmp_path, api, {"username": "b3duZXI=", "password": "unused"})}
    )
    expected = base64.b64encode(b"b3duZXI=:unused").decode()
    assert conn.headers["Authorization"] == f"Basic {expected}"


def test_task_options_override_the_kubeconfig_and_env_fills_in(tmp_path, api, monkeypatch):
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", kubeconfig(tmp_path, "https://elsewhere:6443", {}))
    monkeypatch.setenv("K8S_AUTH_VALIDATE_CERTS", "false")
    conn, _ = k8s.connection_from({"host": api, "api_key": "k"})
    assert conn.server == api
    assert conn.headers["Authorization"] == "Bearer k"
    assert conn.verify is False


def test_exec_credential_plugin_gives_the_token(tmp_path, api):
    plugin = tmp_path / "plugin.sh"
    status = {"kind": "ExecCredential", "status": {"token": "exec-token"}}
    plugin.write_text(f"#!/bin/sh\necho '{json.dumps(status)}'\n")
    plugin.chmod(0o755)
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin)}}
    conn, _ = k8s.connection_from({"kubeconfig": kubeconfig(tmp_path, api, user)})
    assert conn.headers["Authorization"] == "Bearer exec-token"


def test_exec_credential_plugin_failure_is_named(tmp_path, api):
    user = {"exec": {"command": "/bin/false"}}
    with pytest.raises(k8s.ConfigError, match="exec credential plugin /bin/false exited 1"):
        k8s.connection_from({"kubeconfig": kubeconfig(tmp_path, api, user)})


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        pytest.param({"proxy_headers": {"user_agent": "x"}}, "proxy_headers", id="proxy-headers"),
        pytest.param({}, "not running in a pod", id="no-config-at-all"),
        pytest.param({"kubeconfig": {"contexts": []}}, "no current-context", id="no-context"),
        pytest.param(
            {"kubeconfig": "/nonexistent/kubeconfig"},
            "/nonexistent/kubeconfig does not exist",
            id="kubeconfig-gone",
        ),
    ],
)
def test_unusable_configuration_is_refused_by_name(params, fragment):
    with pytest.raises(k8s.ConfigError, match=fragment):
        k8s.connection_from(params)


def test_auth_provider_users_are_refused_by_name(tmp_path, api):
    user = {"auth-provider": {"name": "gcp"}}
    with pytest.raises(k8s.ConfigError, match="auth-provider"):
        k8s.connection_from({"kubeconfig": kubeconfig(tmp_path, api, user)})


def client_for(api, **params):
    conn, groups = k8s.connection_from({"host": api, "api_key": "k", **params})
    return k8s.Client(conn, groups)


def test_one_connection_serves_discovery_and_requests(api):
    client = client_for(api)
    pvcs = k8s.find_resource(client, "v1", "pvc")
    assert pvcs.kind == "PersistentVolumeClaim"
    assert "status" in pvcs.subresources
    assert k8s.get_object(client, pvcs, "claim", "ns") is None
    assert [s["path"] for s in FakeApi.seen] == [
        "/api/v1",
        "/api/v1/namespaces/ns/persistentvolumeclaims/claim",
    ]
    assert len({s["connection"] for s in FakeApi.seen}) == 1
    assert FakeApi.seen[1]["headers"]["Authorization"] == "Bearer k"


def test_paths_of_subresources_and_cluster_scoped_kinds(api):
    client = client_for(api)
    pvcs = k8s.find_resource(client, "v1", "PersistentVolumeClaim")
    pvs = k8s.find_resource(client, "v1", "PersistentVolume")
    assert (
        pvcs.status.path("a b", "ns") == "/api/v1/namespaces/ns/persistentvolumeclaims/a%20b/status"
    )
    assert pvs.path("pv-1", "ignored") == "/api/v1/persistentvolumes/pv-1"


def test_errors_carry_status_and_class(api):
    client = client_for(api)
    pods = k8s.find_resource(client, "v1", "Pod")
    with pytest.raises(k8s.ConflictError) as conflict:
        client.create(pods, {"metadata": {"name": "p"}}, "ns")
    assert conflict.value.status == 409
    with pytest.raises(k8s.NotFoundError):
        client.get(pods, "p", "ns")
    with pytest.raises(k8s.ConfigError, match="no kind Deployment in v1"):
        k8s.find_resource(client, "v1", "Deployment")


def test_impersonated_groups_are_sent_one_header_each(api):
    client = client_for(api, impersonate_user="alice", impersonate_groups=["g1", "g2"])
    k8s.find_resource(client, "v1", "Pod")
    headers = FakeApi.seen[0]["headers"]
    assert headers["Impersonate-User"] == "alice"
    assert headers.get_all("Impersonate-Group") == ["g1", "g2"]


def test_unreachable_server_is_its_own_error():
    client = client_for("http://127.0.0.1:1")
    with pytest.raises(k8s.ApiUnreachable, match=r"127\.0\.0\.1:1"):
        client.request("GET", "/api/v1")


def test_the_modules_do_not_import_the_kubernetes_client(api, monkeypatch):
    # The point of this client: a module run stays cheap. Run one module's import path
    # with the kubernetes package made unimportable.
    code = (
        "import sys; sys.modules['kubernetes'] = None; "
        "import ansible_collections.vm_example.vmdiskimage.plugins.modules.k8s_objects, "
        "ansible_collections.vm_example.vmdiskimage.plugins.modules.population_info, "
        "ansible_collections.vm_example.vmdiskimage.plugins.modules.k8s_cr_status, "
        "ansible_collections.vm_example.vmdiskimage.plugins.modules.k8s_event, "
        "ansible_collections.vm_example.vmdiskimage.plugins.modules.pv_rebind"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=ansible_env(), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}}


def run_objects(api, **args):
    return run_module("k8s_objects", args, env={"K8S_AUTH_HOST": api, "K8S_AUTH_API_KEY": "k"})


def test_k8s_objects_present_leaves_an_existing_object_as_it_is(api):
    FakeApi.objects["/api/v1/namespaces/ns/pods/p"] = dict(POD, spec={"old": True})
    result = run_objects(api, definitions=[dict(POD, spec={"new": True})])
    assert result["changed"] is False
    assert result["results"][0]["spec"] == {"old": True}
    assert [s["method"] for s in FakeApi.seen] == ["GET", "GET"]  # discovery, read


def test_k8s_objects_absent_of_a_missing_object_is_no_change(api):
    result = run_objects(api, state="absent", definitions=[POD])
    assert result["changed"] is False
    assert FakeApi.seen[-1]["method"] == "DELETE"


@pytest.mark.parametrize(
    ("state", "spec", "changed"),
    [
        pytest.param("patched", {"old": True}, False, id="patched-same"),
        pytest.param("patched", {"new": True}, True, id="patched-different"),
        pytest.param("applied", {"old": True}, False, id="applied-same"),
        pytest.param("applied", {"new": True}, True, id="applied-different"),
    ],
)
def test_k8s_objects_check_mode_asks_the_server_for_a_dry_run(api, state, spec, changed):
    path = "/api/v1/namespaces/ns/pods/p"
    FakeApi.objects[path] = dict(POD, spec={"old": True})
    result = run_module(
        "k8s_objects",
        {"state": state, "definitions": [dict(POD, spec=spec)]},
        check_mode=True,
        env={"K8S_AUTH_HOST": api, "K8S_AUTH_API_KEY": "k"},
    )
    assert result["changed"] is changed
    assert result["results"][0]["spec"] == spec
    writes = [s for s in FakeApi.seen if s["method"] not in ("GET",)]
    assert writes, "check mode asks the server"
    assert all("dryRun=All" in s["path"] for s in writes), [s["path"] for s in writes]


@pytest.mark.parametrize("exists", [True, False], ids=["exists", "missing"])
def test_k8s_objects_listed_by_name_reads_the_one_object(api, exists):
    if exists:
        FakeApi.objects["/api/v1/namespaces/ns/pods/p"] = POD
    result = run_objects(api, state="listed", kind="Pod", namespace="ns", name="p")
    assert result["changed"] is False
    assert result["resources"] == ([POD] if exists else [])
    # One GET of the object itself, not a list of the namespace.
    assert FakeApi.seen[-1]["path"] == "/api/v1/namespaces/ns/pods/p"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(
            {"state": "present", "json_patch": []}, "json_patch goes with", id="json-patch"
        ),
        pytest.param({"state": "listed"}, "needs kind", id="listed-without-kind"),
        pytest.param(
            {
                "state": "listed",
                "kind": "Pod",
                "name": "p",
                "namespace": "ns",
                "label_selector": "a=b",
            },
            "do not go together",
            id="name-and-selector",
        ),
        pytest.param(
            {"state": "listed", "kind": "Pod", "name": "p"}, "give namespace", id="no-namespace"
        ),
        pytest.param({"state": "absent", "definitions": []}, "needs definitions", id="empty"),
        pytest.param(
            {"definitions": [{"apiVersion": "v1", "kind": "Pod", "metadata": {}}]},
            "lacks metadata.name",
            id="no-name",
        ),
    ],
)
def test_k8s_objects_refuses_what_it_cannot_do(api, args, fragment):
    result = run_objects(api, **{"definitions": [POD], **args})
    assert result["failed"] is True
    assert fragment in result["msg"]


PVC = {
    "apiVersion": "v1",
    "kind": "PersistentVolumeClaim",
    "metadata": {"name": "prime", "namespace": "ns"},
}


@pytest.mark.parametrize(("phase", "unbound"), [("Bound", []), ("Pending", ["ns/prime"])])
def test_k8s_objects_waits_for_a_claim_before_the_next_object(api, phase, unbound):
    FakeApi.objects["/api/v1/namespaces/ns/persistentvolumeclaims/prime"] = dict(
        PVC, status={"phase": phase}
    )
    FakeApi.objects["/api/v1/namespaces/ns/pods/p"] = POD
    started = time.monotonic()
    result = run_objects(api, definitions=[PVC, POD], wait_bound=3)
    waited = time.monotonic() - started
    assert result["unbound"] == unbound
    assert [r["kind"] for r in result["results"]] == ["PersistentVolumeClaim", "Pod"]
    # The pod is looked at only after the wait (the last request is about it).
    assert FakeApi.seen[-1]["path"].endswith("/pods/p")
    assert (waited >= 3) is (phase == "Pending")
