# Copyright: (c) 2026, vmdiskimage-operator maintainers
# SPDX-License-Identifier: Apache-2.0
"""``vmdiskimage-claim-marker``: label the claims the operator must populate, and tell
it at once when a populator pod has ended.

The operator's PersistentVolumeClaim watch (watches.yaml) has a label selector, so
ansible-operator starts a playbook run (about one CPU-second each) only for labelled
claims, never for the thousands of unrelated PVCs of a cluster. A claim written by a
user carries nothing but its ``dataSourceRef`` (the Kubernetes volume populator
contract), so this process watches every claim and labels those whose ``dataSourceRef``
names a VMDiskImage and that have no volume yet, adding the watch's finalizer with the
label (see :func:`mark_patch`).

ansible-operator cannot see a populator pod end: Pods are kept out of its caches (a
cluster-wide Pod informer to follow a few pods), and its watches pass no status-only
change of an object with a generation, such as a Pod. So this process also watches the
populator pods (by their label, filtered by the API server) and, when one has Succeeded
or Failed, annotates its claim while the claim is still labelled. Any change of a
labelled claim starts its reconcile, which finishes or retries the import without
waiting for its next poll. The annotation is only a nudge: the role reads the pod
itself, and removes the annotation with the label when the import is over.

Each watch starts with a full list (the sweep that catches what happened while this
process was down) and then follows the watch, listing again whenever the watch cannot
resume. It keeps no state but the resourceVersions.

It runs beside ansible-operator: a second container of the operator Deployment, or a
background process of ``make run``. It needs get/list/watch/patch on PVCs and list/watch
on Pods, nothing else.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

log = logging.getLogger("vmdiskimage.claim_marker")

LABEL = "vm.example.com/populate"
#: The finalizer of the operator's PVC watch (watches.yaml), set with the label.
FINALIZER = "vm.example.com/populate"
API_GROUP = "vm.example.com"
KIND = "VMDiskImage"
#: The label of populator pods (roles/populator/templates/populator_pod.yaml.j2).
POD_SELECTOR = "app.kubernetes.io/name=vmdiskimage-populator"
#: The annotation a populator pod's end writes on its claim: "<pod uid> <phase>".
ENDED = "vm.example.com/populator-ended"
#: The populator pod's annotation naming its claim, "namespace/name".
POPULATING = "vm.example.com/populating"
#: The populator pod's label holding its claim's UID.
PRIME_OF = "vm.example.com/prime-of"
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


def mark_patch(
    claim: dict[str, Any], label: str = LABEL, finalizer: str = FINALIZER
) -> dict[str, Any]:
    """The merge patch that labels ``claim`` and adds the operator's finalizer.

    ansible-operator adds that finalizer before a claim's first reconcile anyway, and
    that update starts a second reconcile as soon as the first ends; set here, it costs
    nothing. A merge patch replaces the finalizer list whole, so the patch carries the
    resourceVersion it was computed from: a claim changed meanwhile is refused (409)
    and handled again at its next event.
    """
    meta = claim["metadata"]
    finalizers = list(meta.get("finalizers") or [])
    if finalizer not in finalizers:
        finalizers.append(finalizer)
    return {
        "metadata": {
            "resourceVersion": meta["resourceVersion"],
            "labels": {label: "true"},
            "finalizers": finalizers,
        }
    }


def ended_phase(pod: dict[str, Any]) -> str | None:
    """Succeeded or Failed for a pod that has ended, else None.

    A pod that restarts nothing has ended once all its containers have terminated: the
    API shows that about a second before the kubelet moves the phase on, and the import
    finishes that much sooner. The populator role reads the pod on the same rule
    (pod_phase in plugins/module_utils/population.py).
    """
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase in ("Succeeded", "Failed"):
        return phase
    if (pod.get("spec") or {}).get("restartPolicy") != "Never":
        return None
    states = [
        (s.get("state") or {}).get("terminated") for s in status.get("containerStatuses") or []
    ]
    if not states or None in states:
        return None
    return "Succeeded" if all(s.get("exitCode") == 0 for s in states) else "Failed"


def nudge(pod: dict[str, Any]) -> tuple[str, str, str, str] | None:
    """(namespace, claim name, claim UID, annotation value) for a populator pod that has
    ended, else None.

    The value names the pod's UID, so each attempt of a retried import nudges once,
    even when it ends as the attempt before did.
    """
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    phase = ended_phase(pod)
    name, _, value = POD_SELECTOR.partition("=")
    if (
        phase is None
        or meta.get("deletionTimestamp")
        or labels.get(name) != value
        or not labels.get(PRIME_OF)
    ):
        return None
    populating = (meta.get("annotations") or {}).get(POPULATING) or ""
    namespace, _, claim = populating.partition("/")
    if namespace != meta.get("namespace") or not claim:
        return None
    return namespace, claim, labels[PRIME_OF], f"{meta.get('uid')} {phase}"


def needs_nudge(claim: dict[str, Any] | None, uid: str, value: str, label: str = LABEL) -> bool:
    """Whether ``claim`` is the one of UID ``uid``, still populated (labelled), and not yet
    annotated with ``value``. A finished claim is never touched again."""
    meta = (claim or {}).get("metadata") or {}
    return (
        meta.get("uid") == uid
        and label in (meta.get("labels") or {})
        and (meta.get("annotations") or {}).get(ENDED) != value
    )


class ListWatch:
    """List, then watch, one kind of object; hand each one to ``handle``; start over after
    any error or when the watch cannot resume."""

    def __init__(
        self,
        what: str,
        list_call: Callable[..., Any],
        handle: Callable[[dict[str, Any]], None],
        stop: threading.Event,
    ) -> None:
        self.what = what
        self.list_call = list_call
        self.handle = handle
        self.stop = stop

    def sweep(self) -> str:
        """Handle every object of a fresh list; return the list's resourceVersion."""
        resp = self.list_call()
        try:
            body = json.loads(resp.data)
        finally:
            resp.release_conn()
        for obj in body.get("items") or []:
            self.handle(obj)
        return body["metadata"]["resourceVersion"]

    def events(self, resource_version: str) -> Iterator[dict[str, Any]]:
        """The watch's events from ``resource_version`` until the server ends the request."""
        from kubernetes.watch.watch import iter_resp_lines

        resp = self.list_call(
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
                    log.info("%s watch ended: %s", self.what, obj.get("message", obj))
                    return
                resource_version = obj.get("metadata", {}).get("resourceVersion", resource_version)
                if event.get("type") in ("ADDED", "MODIFIED"):
                    self.handle(obj)

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
                log.warning(
                    "%s: %s: %s; starting over in %s s", self.what, type(exc).__name__, exc, delay
                )
                self.stop.wait(delay)


class ClaimMarker:
    """Label the claims :func:`needs_label` picks; nudge those whose populator pod ended."""

    def __init__(self, core_api: Any, label: str = LABEL, namespace: str | None = None) -> None:
        self.api = core_api
        self.label = label
        self.namespace = namespace
        self.stop = threading.Event()
        self.marked = 0
        self.nudged = 0
        self.claims = ListWatch("PVC", self._list_claims, self.mark, self.stop)
        self.pods = ListWatch("populator pod", self._list_pods, self.nudge, self.stop)

    # -- API calls (raw JSON: decoding into client models would cost far more per claim)

    def _list_claims(self, **kwargs: Any) -> Any:
        if self.namespace:
            return self.api.list_namespaced_persistent_volume_claim(
                self.namespace, _preload_content=False, **kwargs
            )
        return self.api.list_persistent_volume_claim_for_all_namespaces(
            _preload_content=False, **kwargs
        )

    def _list_pods(self, **kwargs: Any) -> Any:
        kwargs["label_selector"] = POD_SELECTOR
        if self.namespace:
            return self.api.list_namespaced_pod(self.namespace, _preload_content=False, **kwargs)
        return self.api.list_pod_for_all_namespaces(_preload_content=False, **kwargs)

    def _patch_claim(self, namespace: str, name: str, body: dict[str, Any], why: str) -> bool:
        """Merge-patch a claim; a claim deleted or changed meanwhile is left alone."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.patch_namespaced_persistent_volume_claim(name, namespace, body)
        except ApiException as exc:
            if exc.status in (404, 409, 422):
                log.info("not %s %s/%s: %s", why, namespace, name, exc.reason)
                return False
            raise
        return True

    def mark(self, claim: dict[str, Any]) -> None:
        """Label a claim that needs it, and add the operator's finalizer."""
        if not needs_label(claim, self.label):
            return
        meta = claim["metadata"]
        body = mark_patch(claim, self.label)
        if self._patch_claim(meta["namespace"], meta["name"], body, "labelling"):
            self.marked += 1
            log.info("labelled %s/%s for the populator", meta["namespace"], meta["name"])

    def nudge(self, pod: dict[str, Any]) -> None:
        """Annotate the claim of a populator pod that has ended, once, while it is labelled."""
        from kubernetes.client.exceptions import ApiException

        target = nudge(pod)
        if target is None:
            return
        namespace, name, uid, value = target
        try:
            resp = self.api.read_namespaced_persistent_volume_claim(
                name, namespace, _preload_content=False
            )
            claim = json.loads(resp.data)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        if not needs_nudge(claim, uid, value, self.label):
            return
        # The resourceVersion makes the patch fail (409) if the claim changed since the
        # read, such as being unlabelled when its import finished.
        version = claim["metadata"]["resourceVersion"]
        body = {"metadata": {"resourceVersion": version, "annotations": {ENDED: value}}}
        if self._patch_claim(namespace, name, body, "nudging"):
            self.nudged += 1
            log.info("%s/%s: its populator pod ended (%s)", namespace, name, value)

    def run(self) -> None:
        """Follow the populator pods in a thread and the claims here, until stopped."""
        threading.Thread(target=self.pods.run, name="populator-pods", daemon=True).start()
        self.claims.run()


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
        "vmdiskimage operator's PVC watch sees them; tell the operator when a populator "
        "pod has ended.",
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
    log.info("watching PVCs and populator pods in %s", args.namespace or "all namespaces")
    marker.run()
    log.info(
        "stopped after %.0f s, %d claims labelled, %d nudged",
        time.monotonic() - started,
        marker.marked,
        marker.nudged,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
