# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""``vmdiskimage-claim-marker``: label the claims the operator must populate.

The operator's PersistentVolumeClaim watch (watches.yaml) has a label selector, so
ansible-operator starts a playbook run (about one CPU-second each) only for labelled
claims, never for the thousands of unrelated PVCs of a cluster. A claim written by a
user carries nothing but its ``dataSourceRef`` (the Kubernetes volume populator
contract), so this process watches every claim and labels those whose ``dataSourceRef``
names a VMDiskImage and that have no volume yet. It starts with a full list (the sweep
that catches claims created while it was down) and then follows the watch, listing
again whenever the watch cannot resume. It keeps no state but the resourceVersion.

It runs beside ansible-operator: a second container of the operator Deployment, or a
background process of ``make run``. It needs list/watch/patch on PVCs, nothing else.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

log = logging.getLogger("vmdiskimage.claim_marker")

LABEL = "vm.example.com/populate"
API_GROUP = "vm.example.com"
KIND = "VMDiskImage"
#: Seconds a watch request stays open before it is renewed (the server may end it sooner).
WATCH_SECONDS = 300


def needs_label(claim: dict[str, Any], label: str = LABEL) -> bool:
    """Whether ``claim`` names a VMDiskImage, has no volume yet and lacks the label."""
    spec = claim.get("spec") or {}
    meta = claim.get("metadata") or {}
    ref = spec.get("dataSourceRef") or {}
    return (
        ref.get("apiGroup") == API_GROUP
        and ref.get("kind") == KIND
        and not spec.get("volumeName")
        and not meta.get("deletionTimestamp")
        and label not in (meta.get("labels") or {})
    )


class ClaimMarker:
    """List, then watch, every PVC; label those :func:`needs_label` picks."""

    def __init__(self, core_api: Any, label: str = LABEL, namespace: str | None = None) -> None:
        self.api = core_api
        self.label = label
        self.namespace = namespace
        self.stop = threading.Event()
        self.marked = 0

    # -- API calls (raw JSON: decoding into client models would cost far more per claim)

    def _list(self, **kwargs: Any) -> Any:
        if self.namespace:
            return self.api.list_namespaced_persistent_volume_claim(
                self.namespace, _preload_content=False, **kwargs
            )
        return self.api.list_persistent_volume_claim_for_all_namespaces(
            _preload_content=False, **kwargs
        )

    def mark(self, claim: dict[str, Any]) -> None:
        """Add the label; a claim deleted or changed meanwhile is left to the next event."""
        from kubernetes.client.exceptions import ApiException

        meta = claim["metadata"]
        try:
            self.api.patch_namespaced_persistent_volume_claim(
                meta["name"],
                meta["namespace"],
                {"metadata": {"labels": {self.label: "true"}}},
            )
        except ApiException as exc:
            if exc.status in (404, 409, 422):
                log.info("not labelling %s/%s: %s", meta["namespace"], meta["name"], exc.reason)
                return
            raise
        self.marked += 1
        log.info("labelled %s/%s for the populator", meta["namespace"], meta["name"])

    def sweep(self) -> str:
        """Label every claim that needs it; return the list's resourceVersion."""
        resp = self._list()
        try:
            body = json.loads(resp.data)
        finally:
            resp.release_conn()
        for claim in body.get("items") or []:
            if needs_label(claim, self.label):
                self.mark(claim)
        return body["metadata"]["resourceVersion"]

    def events(self, resource_version: str) -> Iterator[dict[str, Any]]:
        """The watch's events from ``resource_version`` until the server ends the request."""
        from kubernetes.watch.watch import iter_resp_lines

        resp = self._list(
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
        )
        try:
            for line in iter_resp_lines(resp):
                if self.stop.is_set():
                    return
                if line:
                    yield json.loads(line)
        finally:
            resp.close()
            resp.release_conn()

    def follow(self, resource_version: str) -> None:
        """Handle watch events until the watch must start over from a new list."""
        while not self.stop.is_set():
            for event in self.events(resource_version):
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    # 410 Gone: the resourceVersion is too old; anything else: start over too.
                    log.info("watch ended: %s", obj.get("message", obj))
                    return
                resource_version = obj.get("metadata", {}).get("resourceVersion", resource_version)
                if event.get("type") in ("ADDED", "MODIFIED") and needs_label(obj, self.label):
                    self.mark(obj)

    def run(self, retry_delays: Iterable[float] = (1, 2, 5, 10, 30)) -> None:
        """Sweep and follow until stopped, starting over after any error."""
        delays = list(retry_delays)
        failures = 0
        while not self.stop.is_set():
            try:
                self.follow(self.sweep())
                failures = 0
            except Exception as exc:  # the API server restarts, a token expires, ...
                delay = delays[min(failures, len(delays) - 1)]
                failures += 1
                log.warning("%s: %s; starting over in %s s", type(exc).__name__, exc, delay)
                self.stop.wait(delay)


def _core_api(kubeconfig: str | None) -> Any:
    from kubernetes import client, config

    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig)
    else:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
    return client.CoreV1Api()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vmdiskimage-claim-marker``."""
    parser = argparse.ArgumentParser(
        prog="vmdiskimage-claim-marker",
        description="Label PVCs whose dataSourceRef names a VMDiskImage, so that the "
        "vmdiskimage operator's PVC watch sees them.",
    )
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: in-cluster, then $KUBECONFIG)"
    )
    parser.add_argument("--namespace", help="watch only this namespace (default: all)")
    parser.add_argument("--label", default=LABEL, help=f"label to set (default {LABEL})")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    marker = ClaimMarker(_core_api(args.kubeconfig), label=args.label, namespace=args.namespace)

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        marker.stop.set()
        # The watch blocks in a socket read; leave without waiting for the next event.
        sys.exit(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    started = time.monotonic()
    log.info("watching PVCs in %s", args.namespace or "all namespaces")
    marker.run()
    log.info("stopped after %.0f s, %d claims labelled", time.monotonic() - started, marker.marked)
    return 0


if __name__ == "__main__":
    sys.exit(main())
