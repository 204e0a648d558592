"""`make demo`: the operator end to end on the local node, as a new user would see it.

  python hack/demo.py up      node, registry, sample disk, operator, one import, checks
  python hack/demo.py down    stop the operator and the registry, take the node down

`up` brings up the local Kubernetes node (hack/cluster) and a registry on the pod
network, makes a small raw disk (an MBR partition table, an ext4 filesystem, a marker
file), publishes it as a containerDisk with `vmdiskimage push`, runs the operator
(hack/run-operator.sh), applies a VMDiskImage with createIfNotExist, shows the progress
until Ready, then checks the PVC with a pod (the checksum of the whole disk and the
marker file read from the filesystem) and prints a summary with timings. The operator,
the registry and the node keep running so that you can look around.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "hack" / "cluster" / "cluster.sh"
STATE = Path(os.environ.get("VMDI_DEMO_DIR", "/var/tmp/vmdiskimage-demo"))
NAMESPACE = "vmdiskimage-demo"
REGISTRY_PORT = 5000
DISK_SIZE = 256 << 20
TARGET_SIZE = "1Gi"
PARTITION_START = 1 << 20
VENV_BIN = REPO / ".venv" / "bin"
HEALTH = "127.0.0.1:6789"


def say(text: str) -> None:
    print(f"\033[1m==> {text}\033[0m", flush=True)


def run(*args: str | Path, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], check=True, text=True, **kw)


def cluster_env() -> dict[str, str]:
    out = run("bash", CLUSTER, "env", capture_output=True).stdout
    return dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())


def kubectl(env: dict[str, str], *args: str, stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(
        ["kubectl", "--kubeconfig", env["KUBECONFIG"], *args],
        input=stdin, capture_output=True, text=True,
    )  # fmt: skip
    if check and proc.returncode:
        raise SystemExit(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def pid_alive(path: Path) -> int | None:
    try:
        pid = int(path.read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def start_background(name: str, args: list[str], env: dict[str, str] | None = None) -> None:
    """Start a process in its own session; its pid and log live in STATE."""
    if pid_alive(STATE / f"{name}.pid"):
        return
    with open(STATE / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True
        )
    (STATE / f"{name}.pid").write_text(str(proc.pid))


def stop_background(name: str) -> None:
    pid = pid_alive(STATE / f"{name}.pid")
    if pid:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(100):
            if not pid_alive(STATE / f"{name}.pid"):
                break
            time.sleep(0.2)
        else:
            os.killpg(pid, signal.SIGKILL)
    (STATE / f"{name}.pid").unlink(missing_ok=True)


def wait_http(url: str, seconds: float, failure: str) -> None:
    """Poll url until it answers; exit with failure when it does not within seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(failure)


def make_disk(path: Path, marker: str) -> str:
    """A raw disk: MBR with one Linux partition holding ext4 with /hello.txt. Its sha256."""
    root = Path(tempfile.mkdtemp(prefix="vmdi-demo-root-"))
    (root / "hello.txt").write_text(marker + "\n")
    with open(path, "wb") as fh:
        fh.truncate(DISK_SIZE)
    size = DISK_SIZE - PARTITION_START
    run("mkfs.ext4", "-F", "-q", "-L", "demo-root", "-d", root,
        "-E", f"offset={PARTITION_START}", path, f"{size >> 10}k")  # fmt: skip
    # The MBR after mkfs (which would not touch the first MiB, but be explicit about order).
    entry = struct.pack("<B3sB3sII", 0x00, b"\0\0\0", 0x83, b"\0\0\0",
                        PARTITION_START // 512, size // 512)  # fmt: skip
    with open(path, "r+b") as fh:
        fh.seek(446)
        fh.write(entry + bytes(48) + b"\x55\xaa")
    run("rm", "-rf", root)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def padded_sha256(path: Path, size: int) -> str:
    digest = hashlib.sha256(path.read_bytes())
    remaining = size - path.stat().st_size
    zeros = bytes(4 << 20)
    while remaining:
        n = min(remaining, len(zeros))
        digest.update(zeros[:n])
        remaining -= n
    return digest.hexdigest()


def wait_ready(env: dict[str, str], timeout: float = 300) -> dict:
    """Print kubectl get vdi whenever it changes, until Ready or Failed."""
    last = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = kubectl(
            env, "-n", NAMESPACE, "get", "vdi", "demo", "--no-headers", check=False
        ).strip()
        if line and line != last:
            print(f"   {time.strftime('%H:%M:%S')}  {line}", flush=True)
            last = line
        obj = json.loads(kubectl(env, "-n", NAMESPACE, "get", "vdi", "demo", "-o", "json"))
        phase = obj.get("status", {}).get("phase")
        if phase in ("Ready", "Failed"):
            return obj
        time.sleep(1)
    raise SystemExit("the import did not finish in time; see " + str(STATE / "operator.log"))


def verify_pod(env: dict[str, str]) -> str:
    script = (
        "sha256sum < /data/disk.img; "
        f"debugfs -R 'cat /hello.txt' '/data/disk.img?offset={PARTITION_START}' 2>/dev/null"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "verify", "namespace": NAMESPACE},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [{
                "name": "verify", "image": env["VMDI_SMOKE_IMAGE"], "imagePullPolicy": "Never",
                "command": ["/bin/sh", "-c", script],
                "volumeMounts": [{"name": "disk", "mountPath": "/data", "readOnly": True}],
            }],
            "volumes": [{"name": "disk", "persistentVolumeClaim": {"claimName": "demo-root"}}],
        },
    }  # fmt: skip
    kubectl(env, "-n", NAMESPACE, "delete", "pod", "verify", "--ignore-not-found", "--wait=true")
    kubectl(env, "apply", "-f", "-", stdin=json.dumps(pod))
    kubectl(env, "-n", NAMESPACE, "wait", "pod/verify",
            "--for=jsonpath={.status.phase}=Succeeded", "--timeout=120s")  # fmt: skip
    return kubectl(env, "-n", NAMESPACE, "logs", "verify")


def up() -> None:
    t0 = time.monotonic()
    STATE.mkdir(parents=True, exist_ok=True)
    timings: list[tuple[str, float]] = []

    def lap(label: str, since: float) -> float:
        now = time.monotonic()
        timings.append((label, now - since))
        return now

    say("Starting the local Kubernetes node (hack/cluster/cluster.sh up)")
    t = time.monotonic()
    run("bash", CLUSTER, "up")
    say("Building the populator and operator images into the node")
    run("bash", CLUSTER, "images")
    t = lap("node up and images built", t)
    env = cluster_env()

    say(f"Starting a registry on the pod network at {env['VMDI_BRIDGE_IP']}:{REGISTRY_PORT}")
    registry = f"{env['VMDI_BRIDGE_IP']}:{REGISTRY_PORT}"
    config = STATE / "registry.yml"
    config.write_text(json.dumps({
        "version": 0.1,
        "storage": {"filesystem": {"rootdirectory": str(STATE / "registry")}},
        "http": {"addr": registry},
        "log": {"level": "warn", "accesslog": {"disabled": True}},
    }))  # fmt: skip
    start_background("registry", ["docker-registry", "serve", str(config)])
    wait_http(
        f"http://{registry}/v2/", 10, f"the registry did not start; see {STATE / 'registry.log'}"
    )

    say("Making a sample disk (MBR, ext4, /hello.txt) and pushing it as a containerDisk")
    marker = f"hello from vmdiskimage {secrets.token_hex(4)}"
    disk = STATE / "demo-disk.raw"
    make_disk(disk, marker)
    image = f"{registry}/demo/hello-disk:1"
    run(VENV_BIN / "vmdiskimage", "push", "--as", "containerdisk", "--plain-http", disk, image)
    t = lap("sample disk made and pushed", t)

    say("Running the operator (hack/run-operator.sh; log: " + str(STATE / "operator.log") + ")")
    kubectl(env, "apply", "--server-side", "-f", str(REPO / "config/crd/bases"))
    kubectl(env, "wait", "--for=condition=Established",
            "crd/vmdiskimages.vm.example.com", "--timeout=60s")  # fmt: skip
    start_background(
        "operator",
        ["bash", str(REPO / "hack/run-operator.sh")],
        env={**os.environ, "KUBECONFIG": env["KUBECONFIG"],
             "ANSIBLE_OPERATOR": env["VMDI_ANSIBLE_OPERATOR"]},
    )  # fmt: skip
    wait_http(
        f"http://{HEALTH}/readyz", 60, f"the operator is not ready; see {STATE / 'operator.log'}"
    )
    t = lap("operator started", t)

    say("Applying a VMDiskImage that creates PVC demo-root and fills it")
    kubectl(env, "create", "namespace", NAMESPACE, check=False)
    vdi = {
        "apiVersion": "vm.example.com/v1alpha1",
        "kind": "VMDiskImage",
        "metadata": {"name": "demo", "namespace": NAMESPACE},
        "spec": {
            "sourceImage": image,
            "insecureRegistry": True,
            "targetPVC": {"name": "demo-root", "createIfNotExist": True},
            "targetSize": TARGET_SIZE,
        },
    }
    kubectl(env, "apply", "-f", "-", stdin=json.dumps(vdi))
    obj = wait_ready(env)
    t = lap("kubectl apply to Ready", t)
    if obj["status"]["phase"] != "Ready":
        raise SystemExit(f"the import failed: {obj['status'].get('message')}")

    say("Checking the PVC with a pod: the whole disk's checksum and the marker file")
    logs = verify_pod(env)
    expected = padded_sha256(disk, 1 << 30)
    checksum_ok = expected in logs
    marker_ok = marker in logs
    t = lap("verified by a pod", t)
    print(logs.rstrip())

    status = obj["status"]
    print()
    say("Summary")
    print(f"   source      {image}")
    print(f"   digest      {status.get('digest')}")
    print(f"   PVC         {NAMESPACE}/demo-root, disk grown to {TARGET_SIZE}")
    print(f"   checksum    {'OK' if checksum_ok else 'MISMATCH'} (disk + zeros to {TARGET_SIZE})")
    print(f"   marker      {'OK' if marker_ok else 'MISSING'} ({marker!r} read from ext4)")
    for label, seconds in timings:
        print(f"   {seconds:7.1f} s  {label}")
    print(f"   {time.monotonic() - t0:7.1f} s  in total")
    print(f"""
Look around:
   eval "$({CLUSTER.relative_to(REPO)} env)"
   kubectl -n {NAMESPACE} get vdi,pvc -o wide
   kubectl -n {NAMESPACE} describe vdi demo
   kubectl -n {NAMESPACE} get events
   less {STATE / "operator.log"}
Tear down:
   make demo-down""")
    if not (checksum_ok and marker_ok):
        raise SystemExit("the PVC does not hold the sample disk")


def down() -> None:
    say("Stopping the operator and the registry, taking the node down")
    stop_background("operator")
    stop_background("registry")
    run("bash", CLUSTER, "down")
    run("rm", "-rf", STATE)


if __name__ == "__main__":
    {"up": up, "down": down}[sys.argv[1] if len(sys.argv) > 1 else "up"]()
