# Copyright: (c) 2026, vmdiskimage-operator maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or
# https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Kubernetes access shared by the modules: a small REST client on the standard library.

The modules run once per task, many times per import, and each run pays for its imports:
the ``kubernetes`` package and kubernetes.core's client cost about 0.6 CPU-s to import and
a discovery of every API group per new user (ansible-operator's proxy gives every owner a
user of its own). This client costs about 0.1 CPU-s, reads only the API groups it is asked
for, and keeps one connection for the whole run.

It takes kubernetes.core's connection options (the ``kubernetes.core.k8s_auth_options``
fragment) and their ``K8S_AUTH_*`` environment variables, then the kubeconfig
(``KUBECONFIG``, else ``~/.kube/config``: clusters with a CA file or data or
insecure-skip-tls-verify; users with a token, token file, basic auth, client certificate,
or an exec credential plugin), then the in-cluster service account. ``proxy_headers``,
``persist_config`` and the legacy ``auth-provider`` users are refused by name.
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import os
import ssl
import subprocess
import tempfile
import time
from urllib.parse import quote, urlencode, urlsplit

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC

# Identifies one object; documented by the vm_example.vmdiskimage.k8s_object doc fragment.
OBJECT_ARG_SPEC = dict(
    api_version=dict(type="str", required=True),
    kind=dict(type="str", required=True),
    name=dict(type="str", required=True),
    namespace=dict(type="str"),
)

# Update attempts when the object keeps changing between our read and our write.
CONFLICT_ATTEMPTS = 5

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# Seconds one API request may take (the API server's own default timeout is 60 s).
REQUEST_TIMEOUT = 60

IN_CLUSTER_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# Options of kubernetes.core's fragment that this client does not implement.
UNSUPPORTED_OPTIONS = ("proxy_headers", "persist_config")


class ApiError(Exception):
    """The API server answered with an error status; ``body`` is its Status object."""

    def __init__(self, status, reason, body=""):
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.body = body


class NotFoundError(ApiError):
    """404: the object (or its kind) does not exist."""


class ConflictError(ApiError):
    """409: the object changed since it was read, or already exists."""


class ApiUnreachable(Exception):
    """No answer from the API server (refused, DNS, TLS handshake, timeout)."""


class ConfigError(Exception):
    """The connection options or the kubeconfig cannot be used."""


def with_auth(spec):
    """``spec`` plus kubernetes.core's connection options (kubeconfig, host, api_key, ...)."""
    merged = copy.deepcopy(AUTH_ARG_SPEC)
    merged.update(spec)
    return merged


def k8s_module(argument_spec, **kwargs):
    """An AnsibleModule taking ``argument_spec`` and the connection options."""
    return AnsibleModule(argument_spec=with_auth(argument_spec), supports_check_mode=True, **kwargs)


def _option(params, name):
    """A connection option: the task's value, else its K8S_AUTH_* environment variable."""
    value = params.get(name)
    if value is None:
        value = os.environ.get(f"K8S_AUTH_{name.upper()}")
        if value is not None and name == "validate_certs":
            value = value.lower() not in ("0", "false", "no", "off")
    return value


def _load_yaml(path):
    import yaml  # Ansible depends on PyYAML; imported only when a kubeconfig is read.

    try:
        with open(os.path.expanduser(path), encoding="utf-8") as f:
            return yaml.safe_load(f) or {}
    except FileNotFoundError:
        # Under ansible-operator, the kubeconfig of a run is removed when the operator
        # stops reading that run (at a requeue); a run that overlaps it can find it gone.
        # The reconcile fails and is retried at once with a fresh one.
        raise ConfigError(f"kubeconfig {path} does not exist") from None


def _named(items, name, what, source):
    for item in items or []:
        if item.get("name") == name:
            return item.get(what) or {}
    raise ConfigError(f"kubeconfig {source}: no {what} named {name!r}")


def _relative(path, base):
    return path if not path or os.path.isabs(path) else os.path.join(base, path)


def _exec_credential(spec):
    """The ExecCredential status an exec credential plugin prints (token or certificate)."""
    env = dict(os.environ)
    env.update({e["name"]: e["value"] for e in spec.get("env") or []})
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {
            "apiVersion": spec.get("apiVersion"),
            "kind": "ExecCredential",
            "spec": {"interactive": False},
        }
    )
    command = [spec["command"], *(spec.get("args") or [])]
    try:
        done = subprocess.run(command, env=env, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"the kubeconfig's exec credential plugin {command[0]}: {exc}") from exc
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()[-500:]
        raise ConfigError(
            f"the kubeconfig's exec credential plugin {command[0]} exited {done.returncode}: {err}"
        )
    try:
        return json.loads(done.stdout)["status"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"the kubeconfig's exec credential plugin {command[0]} printed no ExecCredential"
        ) from exc


class Connection:
    """Where the API server is and how to authenticate to it."""

    def __init__(self):
        self.server = None
        self.verify = True
        self.ca_file = None
        self.ca_data = None
        self.cert_file = None
        self.key_file = None
        self.cert_data = None
        self.key_data = None
        self.headers = {}
        self.proxy = None

    def use_token(self, token):
        self.headers["Authorization"] = f"Bearer {token.strip()}"

    def use_basic(self, username, password):
        pair = f"{username}:{password or ''}".encode()
        self.headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"

    def from_kubeconfig(self, kubeconfig, context_name):
        """Fill in from a kubeconfig path or dict and a context (default: current)."""
        if isinstance(kubeconfig, dict):
            doc, source, base = kubeconfig, "(given as a dict)", os.getcwd()
        else:
            doc, source = _load_yaml(kubeconfig), kubeconfig
            base = os.path.dirname(os.path.abspath(os.path.expanduser(kubeconfig)))
        context_name = context_name or doc.get("current-context")
        if not context_name:
            raise ConfigError(f"kubeconfig {source} has no current-context; give a context")
        context = _named(doc.get("contexts"), context_name, "context", source)
        cluster = _named(doc.get("clusters"), context.get("cluster"), "cluster", source)
        user = (
            _named(doc.get("users"), context.get("user"), "user", source)
            if context.get("user")
            else {}
        )
        self.server = cluster.get("server")
        self.verify = not cluster.get("insecure-skip-tls-verify", False)
        self.ca_file = _relative(cluster.get("certificate-authority"), base)
        if cluster.get("certificate-authority-data"):
            self.ca_data = base64.b64decode(cluster["certificate-authority-data"]).decode()
        self.proxy = cluster.get("proxy-url")
        if "auth-provider" in user:
            raise ConfigError(
                f"kubeconfig {source}: user {context.get('user')!r} uses an auth-provider, "
                "which this collection does not support; use an exec credential plugin or a token"
            )
        if "exec" in user:
            status = _exec_credential(user["exec"])
            if status.get("token"):
                self.use_token(status["token"])
            self.cert_data = status.get("clientCertificateData")
            self.key_data = status.get("clientKeyData")
            return
        self.cert_file = _relative(user.get("client-certificate"), base)
        self.key_file = _relative(user.get("client-key"), base)
        if user.get("client-certificate-data"):
            self.cert_data = base64.b64decode(user["client-certificate-data"]).decode()
            self.key_data = base64.b64decode(user.get("client-key-data") or "").decode()
        if user.get("token"):
            self.use_token(user["token"])
        elif user.get("tokenFile"):
            with open(_relative(user["tokenFile"], base), encoding="utf-8") as f:
                self.use_token(f.read())
        elif user.get("username"):
            self.use_basic(user["username"], user.get("password"))
        if user.get("as"):
            self.headers["Impersonate-User"] = user["as"]

    def in_cluster(self):
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        token = os.path.join(IN_CLUSTER_DIR, "token")
        if not host or not os.path.exists(token):
            raise ConfigError(
                "no kubeconfig (KUBECONFIG, ~/.kube/config, K8S_AUTH_KUBECONFIG) and not "
                "running in a pod; give kubeconfig or host"
            )
        self.server = f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}"
        self.ca_file = os.path.join(IN_CLUSTER_DIR, "ca.crt")
        with open(token, encoding="utf-8") as f:
            self.use_token(f.read())


def connection_from(params):
    """The Connection that kubernetes.core's get_api_client would build from ``params``."""
    for name in UNSUPPORTED_OPTIONS:
        if _option(params, name):
            raise ConfigError(f"the connection option {name} is not supported by this collection")
    conn = Connection()
    kubeconfig = _option(params, "kubeconfig")
    host = _option(params, "host")
    if kubeconfig:
        conn.from_kubeconfig(kubeconfig, _option(params, "context"))
    elif not host:
        paths = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
        paths.append("~/.kube/config")
        found = next((p for p in paths if os.path.exists(os.path.expanduser(p))), None)
        if found:
            conn.from_kubeconfig(found, _option(params, "context"))
        else:
            conn.in_cluster()
    if host:
        conn.server = host
    if _option(params, "api_key"):
        conn.use_token(_option(params, "api_key"))
    elif _option(params, "username"):
        conn.use_basic(_option(params, "username"), _option(params, "password"))
    if _option(params, "validate_certs") is not None:
        conn.verify = bool(_option(params, "validate_certs"))
    conn.ca_file = _option(params, "ca_cert") or conn.ca_file
    if _option(params, "client_cert"):
        conn.cert_file, conn.cert_data = _option(params, "client_cert"), None
        conn.key_file, conn.key_data = _option(params, "client_key"), None
    conn.proxy = _option(params, "proxy") or conn.proxy
    if _option(params, "impersonate_user"):
        conn.headers["Impersonate-User"] = _option(params, "impersonate_user")
    groups = _option(params, "impersonate_groups") or []
    if isinstance(groups, str):
        groups = [g for g in groups.split(",") if g]
    if not conn.server:
        raise ConfigError("no API server: the kubeconfig's cluster has no server and no host given")
    return conn, groups


class Resource:
    """One API resource (kind) of a group version, as discovery lists it."""

    def __init__(self, api_version, entry, subresources):
        self.api_version = api_version
        self.kind = entry["kind"]
        self.name = entry["name"]
        self.namespaced = entry["namespaced"]
        self.names = {self.kind, self.name, entry.get("singularName"), *entry.get("shortNames", [])}
        self.subresources = subresources
        self.subresource = None

    @property
    def status(self):
        """The status subresource (patches go to .../name/status)."""
        sub = copy.copy(self)
        sub.subresource = "status"
        return sub

    def path(self, name=None, namespace=None):
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        parts = [prefix]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.name)
        if name:
            parts.append(quote(name, safe=""))
            if self.subresource:
                parts.append(self.subresource)
        return "/".join(parts)


class Client:
    """One connection to the API server, JSON in and out."""

    def __init__(self, conn, groups=()):
        self.conn = conn
        self.groups = list(groups)
        self._http = None
        self._resources = {}
        url = urlsplit(conn.server)
        self.scheme = url.scheme or "https"
        self.host = url.hostname
        self.port = url.port or (443 if self.scheme == "https" else 80)
        self.base = url.path.rstrip("/")

    def _ssl_context(self):
        conn = self.conn
        ctx = ssl.create_default_context(cafile=conn.ca_file, cadata=conn.ca_data)
        if not conn.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if conn.cert_data:
            # ssl loads certificates from files only: a private file, removed at once.
            with tempfile.TemporaryDirectory(prefix="k8s-client-") as tmp:
                cert, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
                for path, data in ((cert, conn.cert_data), (key, conn.key_data)):
                    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                        f.write(data)
                ctx.load_cert_chain(cert, key)
        elif conn.cert_file:
            ctx.load_cert_chain(conn.cert_file, conn.key_file)
        return ctx

    def _connect(self):
        target = (self.host, self.port)
        if self.conn.proxy:
            proxy = urlsplit(self.conn.proxy)
            target = (proxy.hostname, proxy.port or 3128)
        if self.scheme == "https":
            http_conn = http.client.HTTPSConnection(
                *target, timeout=REQUEST_TIMEOUT, context=self._ssl_context()
            )
        else:
            http_conn = http.client.HTTPConnection(*target, timeout=REQUEST_TIMEOUT)
        if self.conn.proxy and self.scheme == "https":
            http_conn.set_tunnel(self.host, self.port)
        return http_conn

    def request(
        self,
        method,
        path,
        body=None,
        content_type="application/json",
        query=None,
        accept="application/json",
    ):
        """The answer's body: parsed JSON for JSON answers, else text. Raises ApiError."""
        url = self.base + path
        if self.conn.proxy and self.scheme == "http":
            url = f"http://{self.host}:{self.port}{url}"
        if query:
            url = f"{url}?{urlencode(query)}"
        headers = dict(self.conn.headers, Accept=accept)
        data = b""
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        headers["Content-Length"] = str(len(data))
        for attempt in (1, 2):
            try:
                if self._http is None:
                    self._http = self._connect()
                self._http.putrequest(method, url, skip_accept_encoding=True)
                for key, value in headers.items():
                    self._http.putheader(key, value)
                for group in self.groups:  # one header per group, as the API wants
                    self._http.putheader("Impersonate-Group", group)
                self._http.endheaders(data)
                resp = self._http.getresponse()
                payload = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A kept-alive connection the server closed: one fresh attempt.
                self.close()
                if attempt == 2:
                    raise ApiUnreachable(f"{self.conn.server} closed the connection") from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise ApiUnreachable(f"{self.conn.server}: {exc}") from exc
        text = payload.decode("utf-8", errors="replace")
        if resp.status >= 400:
            error = {404: NotFoundError, 409: ConflictError}.get(resp.status, ApiError)
            raise error(resp.status, resp.reason, text)
        if "json" in (resp.getheader("Content-Type") or "") and text:
            return json.loads(text)
        return text

    def close(self):
        if self._http is not None:
            self._http.close()
            self._http = None

    def resource(self, kind, api_version):
        """The Resource of ``kind`` (kind, plural or short name) in ``api_version``."""
        if api_version not in self._resources:
            prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            try:
                listing = self.request("GET", prefix)
            except NotFoundError:
                raise ConfigError(f"the API server does not serve {api_version}") from None
            entries = listing.get("resources") or []
            subs = {}
            for entry in entries:
                if "/" in entry["name"]:
                    main, sub = entry["name"].split("/", 1)
                    subs.setdefault(main, []).append(sub)
            self._resources[api_version] = [
                Resource(api_version, e, subs.get(e["name"], []))
                for e in entries
                if "/" not in e["name"]
            ]
        for res in self._resources[api_version]:
            if kind in res.names:
                return res
        raise ConfigError(f"the API server has no kind {kind} in {api_version}")

    def get(self, resource, name=None, namespace=None, **query):
        return self.request("GET", resource.path(name, namespace), query=query or None)

    def create(self, resource, body, namespace=None):
        return self.request("POST", resource.path(None, namespace), body)

    def patch(self, resource, body, name, namespace=None, content_type=MERGE_PATCH, **query):
        return self.request(
            "PATCH", resource.path(name, namespace), body, content_type, query=query or None
        )

    def delete(self, resource, name, namespace=None, body=None):
        return self.request("DELETE", resource.path(name, namespace), body)


def api_client(module):
    """A Client configured from the module's connection options and K8S_AUTH_*."""
    conn, groups = connection_from(module.params)
    return Client(conn, groups)


def find_resource(client, api_version, kind):
    """The API resource for ``kind`` in ``api_version`` (kind or plural name)."""
    return client.resource(kind, api_version)


def get_object(client, resource, name, namespace=None):
    """The object as a dict, or None when it does not exist."""
    try:
        return client.get(resource, name, namespace)
    except NotFoundError:
        return None


def merge_patch(client, resource, body, name, namespace=None):
    """Merge-patch ``resource`` (or a subresource such as ``resource.status``)."""
    return client.patch(resource, body, name, namespace, MERGE_PATCH)


def retry_on_conflict(update, attempts=CONFLICT_ATTEMPTS, pause=0.2):
    """Run ``update()`` (which reads then writes) again when the write hits a 409 Conflict."""
    for attempt in range(1, attempts + 1):
        try:
            return update()
        except ConflictError:
            if attempt == attempts:
                raise
            time.sleep(pause * attempt)
    raise AssertionError("unreachable")


def now_rfc3339():
    """The current UTC time as Kubernetes writes it (second precision, Z suffix)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
