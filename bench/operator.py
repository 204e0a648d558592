#!/usr/bin/env python3
"""Benchmark of the operator on the local node (issue 8), figures printed, no assertions.

Needs the node up with the populator image (`make cluster-up cluster-images`). Runs the
real ansible-operator (hack/run-operator.sh) and a registry on the pod network, then:

1. unrelated PVCs: the delay from operator start to the first populator pod of one
   import, with 0 and with N unrelated PVCs present (side by side), and the operator's
   CPU-seconds spent on N unrelated PVCs at start plus 20 created later;
2. one import of the data-path benchmark's 2 GiB containerDisk: `kubectl apply` to
   Ready, split into the copy (the pod's own `seconds`) and the operator's overhead (the
   rest), how often `kubectl get vdi` showed the progress move, and where the seconds
   went: each playbook run of the VMDiskImage and of its claim (read from
   ansible-runner's artifacts) and the populator pod's life, against the apply;
3. 10 PVCs from one VMDiskImage at once: time until all are Bound;
4. the operator's peak memory: ansible-operator, the claim marker, and the largest sum
   of every process of the operator (ansible-runner and ansible-playbook included)
   seen in 0.5 s samples.

Run: `.venv/bin/python bench/operator.py [--unrelated 200] [--parts start,import,ten]`
(`make bench-operator`). Every namespace it made is deleted while the operator still
runs, so their claims' and VMDiskImages' finalizers are removed by it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The benchmark reuses the tests' cluster and registry harnesses and the data-path
# benchmark's fixtures: the repository root must be importable first, hence E402.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import datapath  # noqa: E402

from tests.cluster.kube import Cluster, cluster_env, pvc_manifest  # noqa: E402
from tests.cluster.operator import Operator, populated_claim, vmdiskimage  # noqa: E402
from tests.support.images import make_disk  # noqa: E402
from tests.support.registry import start_registry  # noqa: E402
from vmdiskimage import push, sources  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
CLK = os.sysconf("SC_CLK_TCK")


def cluster() -> Cluster:
    env = cluster_env()
    return Cluster(env["KUBECONFIG"], env["VMDI_BRIDGE_IP"], env["VMDI_SMOKE_IMAGE"], env)


def tree_pids(root: int) -> list[int]:
    """root and its descendants."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_of_tree(root: int) -> float:
    """CPU-seconds of a process tree, reaped children included (cutime, cstime)."""
    total = 0.0
    for pid in tree_pids(root):
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])) / CLK
    return total


def rss_of(pid: int, field: str = "VmRSS") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class MemorySampler(threading.Thread):
    """Largest summed RSS of a process tree, sampled every 0.5 s."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root, self.peak, self.stop = root, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self.peak = max(self.peak, sum(rss_of(p) for p in tree_pids(self.root)))


def pid_named(root: int, name: str, timeout: float = 30) -> int:
    """The process under ``root`` whose command line names ``name`` (it may still be starting)."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in tree_pids(root):
            try:
                if name in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                    return pid
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {name} under pid {root} after {timeout:.0f} s")
        time.sleep(0.2)


RUNNER = Path("/tmp/ansible-operator/runner")


def playbook_runs(kind_path: str, namespace: str, name: str, since: float) -> list[dict]:
    """The ansible-runner runs of one object that started after ``since`` (epoch).

    ansible-operator keeps each run's job events under
    /tmp/ansible-operator/runner/<group>/<version>/<kind>/<namespace>/<name>/artifacts;
    each event has a timestamp to the microsecond. A run is summed up as its start, its
    end, and the module tasks it ran (skipped ones, set_fact and includes left out).
    """
    runs = []
    artifacts = RUNNER / kind_path / namespace / name / "artifacts"
    for run in artifacts.glob("[0-9]*"):
        events = []
        for path in (run / "job_events").glob("*.json"):
            try:
                events.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        if not events:
            continue
        events.sort(key=lambda e: e.get("counter", 0))
        start = datetime.datetime.fromisoformat(events[0]["created"]).timestamp()
        if start < since:
            continue
        tasks = []
        for event in events:
            data = event.get("event_data", {})
            if event["event"] not in ("runner_on_ok", "runner_on_failed"):
                continue
            if data.get("res", {}).get("skipped") or data.get("task_action", "").endswith(
                ("set_fact", "include_tasks", "include_role", "meta")
            ):
                continue
            failed = "FAILED " if event["event"] == "runner_on_failed" else ""
            period = data.get("res", {}).get("period")
            tasks.append(
                f"{failed}{data.get('task', '?')[:58]} {data.get('duration', 0):.1f}s"
                + (f" -> requeue {period}" if period else "")
            )
        end = datetime.datetime.fromisoformat(events[-1]["created"]).timestamp()
        runs.append({"start": start, "end": end, "object": f"{kind_path.split('/')[-1]} {name}",
                     "tasks": tasks})  # fmt: skip
    return sorted(runs, key=lambda r: r["start"])


def k8s_time(stamp: str | None) -> float | None:
    """An RFC 3339 timestamp of the API (to the second) as epoch seconds."""
    return (
        datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else None
    )


def wait(what: str, predicate, timeout: float = 900, interval: float = 0.2) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    raise RuntimeError(f"timed out waiting for {what}")


def ns(c: Cluster, name: str) -> str:
    c.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=true", "--timeout=300s")
    c.kubectl("create", "namespace", name)
    wait("default service account", lambda: c.kubectl("-n", name, "get", "sa", "default",
                                                      check=False) != "", 60)  # fmt: skip
    return name


def pods(c: Cluster, namespace: str) -> list[dict]:
    return json.loads(c.kubectl("-n", namespace, "get", "pods", "-o", "json"))["items"]


def vdi_status(c: Cluster, namespace: str, name: str) -> dict:
    return c.get(namespace, "vdi", name).get("status", {})


def unrelated_claims(c: Cluster, namespace: str, count: int, start: int = 0) -> None:
    """PVCs of a class that provisions nothing: they stay Pending, cost only API objects."""
    items = []
    for i in range(start, start + count):
        items.append(pvc_manifest(f"unrelated-{i}", "bench-no-provisioner", size="1Mi"))
    for i in range(0, len(items), 50):
        c.apply(namespace, *items[i : i + 50])


def start_to_first_pod(c: Cluster, op: Operator, source: str, label: str) -> float:
    """Seconds from operator start to the populator pod of one new import."""
    namespace = ns(c, f"bench-start-{label}")
    c.apply(namespace, vmdiskimage("d", source, "d"))
    c.apply(namespace, populated_claim("d", "d", "hostpath"))
    t0 = time.monotonic()
    op.start()
    wait("the populator pod", lambda: pods(c, namespace) != [], 300)
    seconds = time.monotonic() - t0
    wait("the import", lambda: vdi_status(c, namespace, "d").get("phase") == "Ready", 300)
    # The namespace goes while the operator still runs (its finalizers), and is gone
    # before the next measurement, which must not share the machine with its cleanup.
    c.kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=300s")
    op.stop()
    return seconds


def part_start(c: Cluster, op: Operator, small_ref: str, unrelated: int) -> list[tuple[str, str]]:
    """1. The cost of unrelated PVCs: start delay and the operator's CPU."""
    print("1. start with 0 and with N unrelated PVCs", flush=True)
    crowd = "bench-unrelated"
    c.kubectl("delete", "namespace", crowd, "--ignore-not-found", "--wait=true")
    clean, crowded = [], []
    start_to_first_pod(c, op, small_ref, "warm-up")  # first runs fill caches
    for _ in range(2):  # alternated, so that warming up favours neither
        clean.append(start_to_first_pod(c, op, small_ref, "clean"))
        ns(c, crowd)
        unrelated_claims(c, crowd, unrelated)
        crowded.append(start_to_first_pod(c, op, small_ref, "crowded"))
        c.kubectl("delete", "namespace", crowd, "--wait=true", "--timeout=300s")
    ns(c, crowd)
    unrelated_claims(c, crowd, unrelated)
    op.start()
    time.sleep(30)
    cpu_start = cpu_of_tree(op.process.pid)  # start, with N unrelated PVCs present
    time.sleep(30)
    cpu_quiet = cpu_of_tree(op.process.pid) - cpu_start
    cpu1 = cpu_of_tree(op.process.pid)
    unrelated_claims(c, crowd, 20, start=unrelated)
    time.sleep(30)
    cpu_new = cpu_of_tree(op.process.pid) - cpu1
    runs_dir = RUNNER / "v1/PersistentVolumeClaim" / crowd
    runs = len(list(runs_dir.iterdir())) if runs_dir.exists() else 0
    c.kubectl("delete", "namespace", crowd, "--wait=true", "--timeout=300s")
    mean = sum(crowded) / len(crowded) - sum(clean) / len(clean)
    return [
        ("operator start -> first populator pod, 0 unrelated PVCs",
         " / ".join(f"{x:.1f} s" for x in clean)),
        (f"operator start -> first populator pod, {unrelated} unrelated PVCs",
         " / ".join(f"{x:.1f} s" for x in crowded) + f" (mean delay {mean:+.1f} s)"),
        (f"operator CPU, first 30 s after start with {unrelated} unrelated PVCs",
         f"{cpu_start:.2f} CPU-s"),
        ("operator CPU, the next 30 s, idle", f"{cpu_quiet:.2f} CPU-s"),
        ("operator CPU, 30 s in which 20 unrelated PVCs are created", f"{cpu_new:.2f} CPU-s"),
        ("playbook runs for unrelated PVCs", str(runs)),
    ]  # fmt: skip


def part_import(c: Cluster, op: Operator, big_ref: str) -> list[tuple[str, str]]:
    """2. One 2 GiB import: apply -> Ready, the copy, the overhead and where it went."""
    print("2. one import of the 2 GiB containerDisk", flush=True)
    namespace = ns(c, "bench-big")
    wall0, t0 = time.time(), time.monotonic()
    target = {"name": "big", "createIfNotExist": True}
    c.apply(namespace, vmdiskimage("big", big_ref, "big", targetSize="3Gi", targetPVC=target))
    cpu_before = cpu_of_tree(op.process.pid)
    seen, last_change, gaps, last, copy, pod = [], t0, [], None, float("nan"), {}
    while True:
        # One kubectl call a second: the benchmark's own load stays small.
        items = json.loads(c.kubectl("-n", namespace, "get", "vdi,pods", "-o", "json"))["items"]
        for found in (i for i in items if i["kind"] == "Pod"):
            pod = found
            for cs in found.get("status", {}).get("containerStatuses") or []:
                message = (cs.get("state", {}).get("terminated") or {}).get("message")
                if message and message.startswith("{"):
                    copy = json.loads(message).get("seconds", copy)
        status = next(i for i in items if i["kind"] == "VMDiskImage").get("status", {})
        shown = (status.get("phase"), status.get("progress"))
        now = time.monotonic()
        if shown != last:
            if last is not None and last[0] == "Copying" and shown[0] == "Copying":
                gaps.append(now - last_change)
            seen.append(f"{now - t0:5.1f}s {shown[0]} {shown[1]}")
            last, last_change = shown, now
        if shown[0] in ("Ready", "Failed"):
            break
        time.sleep(1)
    total = time.monotonic() - t0
    # The claim is unlabelled a few seconds after Ready: count that run too.
    wait("the claim to be released", lambda: "vm.example.com/populate" not in (
        c.get(namespace, "pvc", "big")["metadata"].get("labels") or {}), 120, 1)  # fmt: skip
    cpu_import = cpu_of_tree(op.process.pid) - cpu_before
    print("   status timeline: " + "; ".join(seen), flush=True)

    # Where the seconds went: the playbook runs and the pod's life, from the apply.
    runs = playbook_runs("vm.example.com/v1alpha1/VMDiskImage", namespace, "big", wall0)
    runs += playbook_runs("v1/PersistentVolumeClaim", namespace, "big", wall0)
    runs.sort(key=lambda r: r["start"])
    print("   playbook runs (seconds from the apply; module tasks with their own seconds):")
    for run in runs:
        print(f"   {run['start'] - wall0:5.1f} -{run['end'] - wall0:5.1f}  {run['object']}")
        for task in run["tasks"]:
            print(f"                   {task}")
    statuses = (pod.get("status", {}).get("containerStatuses") or [{}])[0].get("state", {})
    ended = statuses.get("terminated") or {}
    created = k8s_time(pod.get("metadata", {}).get("creationTimestamp"))
    started, finished = k8s_time(ended.get("startedAt")), k8s_time(ended.get("finishedAt"))
    before_ready = [r for r in runs if r["start"] < wall0 + total]
    in_runs = sum(min(r["end"], wall0 + total) - r["start"] for r in before_ready)

    def since(stamp: float | None) -> str:
        return f"{stamp - wall0:.0f} s" if stamp else "?"

    print(f"   populator pod: created {since(created)}, container started {since(started)}, "
          f"finished {since(finished)} (API timestamps, to the second)", flush=True)  # fmt: skip
    return [
        ("2 GiB containerDisk: kubectl apply -> Ready", f"{total:.1f} s ({shown[0]})"),
        ("  copy (the pod's own seconds)", f"{copy:.1f} s"),
        ("  operator overhead (the rest)", f"{total - copy:.1f} s"),
        ("  apply -> populator pod created", since(created)),
        ("  pod created -> its container finished", f"{finished - created:.0f} s"
         if created and finished else "?"),
        ("  container finished -> Ready", f"{wall0 + total - finished:.0f} s" if finished else "?"),
        ("  playbook runs before Ready (time inside them)",
         f"{len(before_ready)} ({in_runs:.1f} s)"),
        ("  operator CPU for this import (all its processes)", f"{cpu_import:.1f} CPU-s"),
        ("  longest wait between progress changes while copying",
         f"{max(gaps):.1f} s" if gaps else "n/a (copy shorter than one poll)"),
    ]  # fmt: skip


def part_ten(c: Cluster, small_ref: str) -> list[tuple[str, str]]:
    """3. Ten claims of one VMDiskImage at once."""
    print("3. ten PVCs from one VMDiskImage at once", flush=True)
    namespace = ns(c, "bench-ten")
    c.apply(namespace, vmdiskimage("ten", small_ref, "ten-0"))
    wait("the digest", lambda: vdi_status(c, namespace, "ten").get("digest"), 120)
    t0 = time.monotonic()
    c.apply(namespace, *[populated_claim(f"ten-{i}", "ten", "hostpath") for i in range(10)])

    def all_bound() -> bool:
        items = json.loads(c.kubectl("-n", namespace, "get", "pvc", "-o", "json"))["items"]
        mine = [p for p in items if p["metadata"]["name"].startswith("ten-")]
        return len(mine) == 10 and all(p["status"].get("phase") == "Bound" for p in mine)

    wait("10 claims bound", all_bound, 900, 1)
    ten = time.monotonic() - t0
    return [("10 PVCs from one VMDiskImage: apply -> all Bound", f"{ten:.1f} s")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--unrelated", type=int, default=200, help="unrelated PVCs (200)")
    parser.add_argument("--parts", default="start,import,ten",
                        help="of start (unrelated PVCs), import, ten (all)")  # fmt: skip
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    c = cluster()
    c.kubectl("apply", "--server-side", "-f", str(ROOT / "config/crd/bases"))
    work = Path(tempfile.mkdtemp(prefix="vmdi-bench-operator-"))
    datapath.CACHE.mkdir(parents=True, exist_ok=True)
    print("fixtures: 2 GiB containerDisk (512 MiB data, gzip) and a 24 MiB one", flush=True)
    big = datapath.make_layer(datapath.make_disk(datapath.CACHE / "disk-2g.raw", 2 * GiB),
                              sources.CONTAINER_DISK, "gzip")  # fmt: skip
    small = make_disk(work / "small.raw", 24 * MiB, ((0, MiB), (10 * MiB, 3 * MiB)), seed=3)
    rows: list[tuple[str, str]] = []
    with start_registry(work / "registry", host=c.bridge_ip) as registry:
        with registry.client() as client:
            datapath.push_layer(client, "bench/big", big)
            push.push(small, f"{registry.url}/bench/small:1", kind=push.CONTAINER_DISK,
                      comp="gzip", client=client)  # fmt: skip
        big_ref, small_ref = f"{registry.url}/bench/big:bench", f"{registry.url}/bench/small:1"
        op = Operator(c, work)
        try:
            if "start" in parts:
                rows += part_start(c, op, small_ref, args.unrelated)  # leaves it running
            if op.process is None:
                op.start()
            operator_pid = pid_named(op.process.pid, "ansible-operator")
            marker_pid = pid_named(op.process.pid, "claim-marker")
            sampler = MemorySampler(op.process.pid)
            sampler.start()
            if "import" in parts:
                rows += part_import(c, op, big_ref)
            if "ten" in parts:
                rows += part_ten(c, small_ref)
            sampler.stop.set()
            rows += [
                ("peak RSS ansible-operator", f"{rss_of(operator_pid, 'VmHWM') / MiB:.0f} MiB"),
                ("peak RSS claim marker", f"{rss_of(marker_pid, 'VmHWM') / MiB:.0f} MiB"),
                ("peak RSS of all operator processes (0.5 s samples)",
                 f"{sampler.peak / MiB:.0f} MiB"),
            ]  # fmt: skip
        finally:
            # The namespaces go while the operator still runs: their claims and
            # VMDiskImages carry its finalizers, which only it removes.
            if op.process is None:
                op.start()
            for name in ("bench-unrelated", "bench-big", "bench-ten"):
                c.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=true",
                          "--timeout=300s", check=False)  # fmt: skip
            op.stop()
    width = max(len(k) for k, _ in rows)
    print()
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
