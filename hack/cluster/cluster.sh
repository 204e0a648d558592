#!/usr/bin/env bash
# A real single-node Kubernetes for the tests and the demo, built from upstream Go
# modules and Debian packages. No cluster download and no registry pull: everything is
# compiled or built here, binaries are cached outside the repo keyed by version.
#
#   cluster.sh build                 build (or find cached) binaries
#   cluster.sh up                    build, then start the node (idempotent)
#   cluster.sh down                  stop everything, unmount, detach, remove state
#   cluster.sh status                say what runs
#   cluster.sh env                   print export lines for other tools
#   cluster.sh images                build base, pause, smoke and project images
#   cluster.sh build-image DOCKERFILE CONTEXT TAG   build one image and load it
#   cluster.sh device-ownership true|false   restart containerd with
#                                    device_ownership_from_security_context so
#                                    (containers keep running; `up` sets true)
#
# Layout: binaries in $VMDI_CACHE/bin/<component>-<version>/, the running node's state
# in $VMDI_CLUSTER_DIR (kubeconfig, pki, logs, etcd, kubelet), containerd's image store
# in $VMDI_CACHE/containerd so a warm `up` need not re-import images.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

# Pinned versions: the one place to change them.
K8S_VERSION=v1.33.13
K8S_COMMIT=c029d48d28322ad0369aabdcf8b656fd3195cd30
ETCD_VERSION=v3.5.35
PROVISIONER_VERSION=v5.3.0
ANSIBLE_OPERATOR_VERSION=v1.42.2

CACHE="${VMDI_CACHE:-$HOME/.cache/vmdiskimage}"
STATE="${VMDI_CLUSTER_DIR:-/var/tmp/vmdiskimage-cluster}"
BIN="$CACHE/bin"

# The pod network: a bridge with a fixed gateway address, so a test registry started
# on the host at $BRIDGE_IP is reachable from every pod.
BRIDGE=vmdi0
BRIDGE_IP=10.99.0.1
POD_CIDR=10.99.0.0/24
SERVICE_CIDR=10.100.0.0/24
API_SERVICE_IP=10.100.0.1 # first address of SERVICE_CIDR: the `kubernetes` service
NODE_NAME=vmdi-node
API_PORT=6443
ETCD_CLIENT_PORT=23790 # not 2379, so a stray etcd on the host cannot collide
ETCD_PEER_PORT=23800
CSI_DRIVER=hostpath.csi.vmdiskimage.local
IPT_COMMENT="vmdiskimage-cluster" # tags every iptables rule we add, so down finds them

CONTAINERD_ROOT="$CACHE/containerd"
CONTAINERD_SOCK="$STATE/containerd/containerd.sock"
KUBELET_DIR="$STATE/kubelet"
CSI_SOCK="$KUBELET_DIR/plugins/$CSI_DRIVER/csi.sock"
KUBECONFIG_FILE="$STATE/kubeconfig"

BASE_IMAGE=localhost/vmdiskimage-base
PAUSE_IMAGE=localhost/vmdiskimage-pause:latest
SMOKE_IMAGE=localhost/vmdiskimage-smoke:latest

log() { printf '%s cluster: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------------------
# Host packages
# ---------------------------------------------------------------------------------------

APT_PACKAGES=(containerd runc containernetworking-plugins buildah debootstrap iproute2
  iptables conntrack socat ethtool util-linux mount e2fsprogs openssl curl
  docker-registry skopeo)

ensure_packages() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == "install ok installed" ]] || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
  fi
  command -v go >/dev/null || die "Go is needed to build the node binaries"
  # buildah and skopeo refuse to work without a signature policy.
  if [[ ! -e /etc/containers/policy.json ]]; then
    mkdir -p /etc/containers
    echo '{"default":[{"type":"insecureAcceptAnything"}]}' >/etc/containers/policy.json
  fi
}

# ---------------------------------------------------------------------------------------
# Binaries
# ---------------------------------------------------------------------------------------

# Content hash of a source folder we own: its cache key, so an edit rebuilds it.
src_hash() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12); }

k8s_dir() { echo "$BIN/kubernetes-$K8S_VERSION"; }
etcd_dir() { echo "$BIN/etcd-$ETCD_VERSION"; }
provisioner_dir() { echo "$BIN/external-provisioner-$PROVISIONER_VERSION"; }
ansible_operator_dir() { echo "$BIN/ansible-operator-$ANSIBLE_OPERATOR_VERSION"; }
csi_dir() { echo "$BIN/vmdi-csi-hostpath-$(src_hash "$HERE/csi-hostpath")"; }
pause_dir() { echo "$BIN/pause-$(src_hash "$HERE/pause")"; }

# go_build DIR MODULE_DIR OUT_NAME PACKAGE LDFLAGS: build one binary unless cached.
# Each build writes to a temporary name and renames, so an interrupted build never
# leaves a half-written binary that a later run would trust.
go_build() {
  local dir=$1 moddir=$2 name=$3 pkg=$4 ldflags=$5
  [[ -x "$dir/$name" ]] && return 0
  mkdir -p "$dir"
  log "building $name ($pkg) into $dir"
  local start=$SECONDS
  (cd "$moddir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" \
    -o "$dir/.$name.tmp" "$pkg")
  mv "$dir/.$name.tmp" "$dir/$name"
  log "built $name in $((SECONDS - start)) s"
}

build_binaries() {
  local v p ld
  # Kubernetes: version info the way upstream's hack/lib/version.sh sets it.
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    v=${K8S_VERSION#v}
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=${v%%.*} -X $p.gitMinor=$(cut -d. -f2 <<<"$v")"
    ld+=" -X $p.gitCommit=$K8S_COMMIT -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  for p in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
    go_build "$(k8s_dir)" "$HERE/gomod/kubernetes" "$p" "k8s.io/kubernetes/cmd/$p" "$ld"
  done
  go_build "$(etcd_dir)" "$HERE/gomod/etcd" etcd go.etcd.io/etcd/server/v3 \
    "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
  go_build "$(provisioner_dir)" "$HERE/gomod/external-provisioner" csi-provisioner \
    github.com/kubernetes-csi/external-provisioner/v5/cmd/csi-provisioner "-s -w -X main.version=$PROVISIONER_VERSION"
  p=github.com/operator-framework/ansible-operator-plugins/internal/version
  go_build "$(ansible_operator_dir)" "$HERE/gomod/ansible-operator" ansible-operator \
    github.com/operator-framework/ansible-operator-plugins/cmd/ansible-operator \
    "-s -w -X $p.Version=$ANSIBLE_OPERATOR_VERSION -X $p.GitVersion=$ANSIBLE_OPERATOR_VERSION -X $p.KubernetesVersion=$K8S_VERSION"
  go_build "$(csi_dir)" "$HERE/csi-hostpath" vmdi-csi-hostpath . "-s -w -X main.version=$(basename "$(csi_dir)")"
  go_build "$(pause_dir)" "$HERE/pause" pause . "-s -w"
}

# ---------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------

ctr_k8s() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }
containerd_running() { [[ -S "$CONTAINERD_SOCK" ]] && ctr --address "$CONTAINERD_SOCK" version >/dev/null 2>&1; }

# load_image TAG: copy a buildah image into containerd's k8s.io namespace, where the
# kubelet finds it. Skipped when containerd has the tag and it was loaded from the same
# buildah image id (recorded beside containerd's store, which outlives `down`).
load_image() {
  local tag=$1 id stamp archive
  containerd_running || { log "containerd is not running: $tag stays in buildah until 'up'"; return 0; }
  id=$(buildah inspect --type image --format '{{.FromImageID}}' "$tag")
  stamp="$CONTAINERD_ROOT/vmdi-loaded/$(tr /: __ <<<"$tag")"
  # (No `ctr ... | grep -q`: grep's early exit would fail the pipe under pipefail.)
  if [[ "$(cat "$stamp" 2>/dev/null)" == "$id" && $'\n'"$(ctr_k8s images ls -q)"$'\n' == *$'\n'"$tag"$'\n'* ]]; then
    return 0
  fi
  archive=$(mktemp -d /var/tmp/vmdi-image.XXXXXX)
  buildah push --quiet "$tag" "oci-archive:$archive/image.tar:$tag" >/dev/null
  ctr_k8s images import "$archive/image.tar" >/dev/null
  rm -rf "$archive"
  mkdir -p "$(dirname "$stamp")"
  echo "$id" >"$stamp"
  log "loaded $tag into containerd"
}

image_exists() { buildah inspect --type image "$1" >/dev/null 2>&1; }

# A Debian base made locally with debootstrap: every project image starts FROM it.
BASE_PACKAGES=python3,python3-pip,python3-venv,qemu-utils,ca-certificates
build_base_image() {
  local key tag rootfs ctr mirror
  key=$(echo "bookworm minbase $BASE_PACKAGES v1" | sha256sum | cut -c1-12)
  tag="$BASE_IMAGE:$key"
  if ! image_exists "$tag"; then
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    rootfs=$(mktemp -d /var/tmp/vmdi-rootfs.XXXXXX)
    log "debootstrap bookworm into $rootfs (about a minute)"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$rootfs" "${mirror:-http://deb.debian.org/debian}" >"$rootfs.log" 2>&1 ||
      die "debootstrap failed, see $rootfs.log"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs.log"
    ctr=$(buildah from scratch)
    # A tar pipe into the mounted container keeps owners, modes and links as debootstrap made them.
    tar -C "$rootfs" -cf - . | tar -C "$(buildah mount "$ctr")" -xpf -
    buildah umount "$ctr" >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env LANG=C.UTF-8 --cmd /bin/bash --label org.opencontainers.image.title=vmdiskimage-base "$ctr"
    buildah commit --quiet --rm "$ctr" "$tag" >/dev/null
    rm -rf "$rootfs"
  fi
  buildah tag "$tag" "$BASE_IMAGE:latest"
  load_image "$BASE_IMAGE:latest"
}

# The pod sandbox image: our static pause binary alone.
build_pause_image() {
  local tag ctr
  tag="localhost/vmdiskimage-pause:$(basename "$(pause_dir)" | cut -d- -f2)"
  if ! image_exists "$tag"; then
    ctr=$(buildah from scratch)
    buildah copy --quiet "$ctr" "$(pause_dir)/pause" /pause >/dev/null
    buildah config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
    buildah commit --quiet --rm "$ctr" "$tag" >/dev/null
  fi
  buildah tag "$tag" "$PAUSE_IMAGE"
  load_image "$PAUSE_IMAGE"
}

# Hash of what a Dockerfile build sees: the Dockerfile, the base image's id and the
# context's files less those .dockerignore names. Patterns are matched anchored at the
# context root, so a pattern can only exclude too little (an extra rebuild), never too much.
context_hash() {
  local dockerfile=$1 context=$2 ignore
  ignore=$(mktemp)
  if [[ -f "$context/.dockerignore" ]]; then
    grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' -e '^!' "$context/.dockerignore" >"$ignore" || true
  fi
  {
    sha256sum <"$dockerfile"
    buildah inspect --type image --format '{{.FromImageID}}' "$BASE_IMAGE:latest"
    (cd "$context" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | sort |
      tar --anchored --exclude-from="$ignore" --sort=name --mtime=@0 --owner=0 --group=0 \
        --numeric-owner -cf - -T - | sha256sum)
  } | sha256sum | cut -c1-12
  rm -f "$ignore"
}

# build_image DOCKERFILE CONTEXT TAG: build FROM the local base and load into containerd.
# Also tags TAG's repository with the content hash, which is the cache key.
build_image() {
  local dockerfile=$1 context=$2 tag=$3 key
  [[ -f "$dockerfile" ]] || die "no Dockerfile at $dockerfile"
  image_exists "$BASE_IMAGE:latest" || build_base_image
  key=$(context_hash "$dockerfile" "$context")
  if ! image_exists "${tag%:*}:ctx-$key"; then
    log "building $tag from $dockerfile"
    # RUN steps reach the package registries through this host's TLS setup: lend them
    # the host's CA bundle and pip config for the build only (not kept in the image).
    local mounts=() f
    for f in /etc/ssl/certs/ca-certificates.crt /etc/pip.conf; do
      [[ -f "$f" ]] && mounts+=(--volume "$f:$f:ro")
    done
    buildah bud --quiet --isolation chroot --layers=false --pull=never "${mounts[@]}" \
      --build-arg BASE_IMAGE="$BASE_IMAGE:latest" -f "$dockerfile" -t "${tag%:*}:ctx-$key" "$context" >/dev/null
  fi
  buildah tag "${tag%:*}:ctx-$key" "$tag"
  # Remember the tag, so a later `up` loads it into a fresh containerd too.
  mkdir -p "$CACHE"
  grep -qxF "$tag" "$CACHE/images.list" 2>/dev/null || echo "$tag" >>"$CACHE/images.list"
  load_image "$tag"
}

# Load every image build_image made before (e.g. `images` run while the node was down).
load_built_images() {
  local tag
  [[ -f "$CACHE/images.list" ]] || return 0
  while read -r tag; do
    if image_exists "$tag"; then load_image "$tag"; fi
  done <"$CACHE/images.list"
}

build_images() {
  build_base_image
  build_pause_image
  build_image "$HERE/smoke/Dockerfile" "$HERE/smoke" "$SMOKE_IMAGE"
}

# Every image the project's Dockerfiles define, for `images` (not part of `up`).
build_project_images() {
  # The operator image copies build/ (ansible-operator, vendored collections), which
  # `make operator-image` prepares; without it there is nothing to build yet.
  if [[ -f "$REPO/Dockerfile" && -d "$REPO/build" ]]; then
    build_image "$REPO/Dockerfile" "$REPO" localhost/vmdiskimage-operator:dev
  elif [[ -f "$REPO/Dockerfile" ]]; then
    log "skipping the operator image: $REPO/build is missing (make operator-image prepares it)"
  fi
  [[ -f "$REPO/populator.Dockerfile" ]] && build_image "$REPO/populator.Dockerfile" "$REPO" localhost/vmdiskimage-populator:dev
  return 0
}

# ---------------------------------------------------------------------------------------
# PKI and kubeconfigs
# ---------------------------------------------------------------------------------------

# cert NAME SUBJECT [SANS]: a key and a certificate signed by the cluster CA.
cert() {
  local name=$1 subj=$2 sans=${3:-} pki="$STATE/pki"
  [[ -f "$pki/$name.crt" ]] && return 0
  openssl genrsa -out "$pki/$name.key" 2048 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [[ -n "$sans" ]] && echo "subjectAltName=$sans"
  } >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

kubeconfig() {
  local name=$1 user=$2 out=$3
  cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: vmdiskimage
  cluster:
    certificate-authority: $STATE/pki/ca.crt
    server: https://127.0.0.1:$API_PORT
users:
- name: $user
  user:
    client-certificate: $STATE/pki/$name.crt
    client-key: $STATE/pki/$name.key
contexts:
- name: vmdiskimage
  context: {cluster: vmdiskimage, user: $user}
current-context: vmdiskimage
EOF
}

make_pki() {
  local pki="$STATE/pki"
  mkdir -p "$pki"
  if [[ ! -f "$pki/ca.crt" ]]; then
    openssl genrsa -out "$pki/ca.key" 2048 2>/dev/null
    openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=vmdiskimage-cluster-ca" -days 3650 \
      -sha256 -out "$pki/ca.crt" 2>/dev/null
    openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  fi
  cert apiserver "/CN=kube-apiserver" \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$BRIDGE_IP,IP:$API_SERVICE_IP"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  cert admin "/O=system:masters/CN=vmdiskimage-admin"
  cert controller-manager "/CN=system:kube-controller-manager"
  cert scheduler "/CN=system:kube-scheduler"
  cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "DNS:$NODE_NAME,DNS:localhost,IP:127.0.0.1,IP:$BRIDGE_IP"
  # system:kube-proxy is bound to the built-in system:node-proxier role.
  cert kube-proxy "/CN=system:kube-proxy"
  kubeconfig admin vmdiskimage-admin "$KUBECONFIG_FILE"
  kubeconfig controller-manager system:kube-controller-manager "$STATE/controller-manager.kubeconfig"
  kubeconfig scheduler system:kube-scheduler "$STATE/scheduler.kubeconfig"
  kubeconfig kubelet "system:node:$NODE_NAME" "$STATE/kubelet.kubeconfig"
  kubeconfig kube-proxy system:kube-proxy "$STATE/kube-proxy.kubeconfig"
}

# ---------------------------------------------------------------------------------------
# Processes: each component runs detached, its pid in $STATE/run/NAME.pid, its output
# in $STATE/logs/NAME.log.
# ---------------------------------------------------------------------------------------

pid_of() { [[ -f "$STATE/run/$1.pid" ]] && cat "$STATE/run/$1.pid"; }
# alive PID: exists and is not a zombie (our components are reaped by init, not by us).
alive() { [[ -r "/proc/$1/stat" && "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]]; }
running() { local p; p=$(pid_of "$1") && [[ -n "$p" ]] && alive "$p"; }

start() {
  local name=$1; shift
  running "$name" && return 0
  mkdir -p "$STATE/run" "$STATE/logs"
  # setsid: the component outlives this script and is not killed with its terminal.
  setsid "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/run/$name.pid"
  log "started $name (pid $!)"
}

STOPPED_PIDS=()
stop() {
  local name=$1 p i
  p=$(pid_of "$name") || return 0
  if [[ -n "$p" ]] && alive "$p"; then
    kill -TERM "$p" 2>/dev/null || true
    for i in $(seq 1 50); do alive "$p" || break; sleep 0.2; done
    if alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
    STOPPED_PIDS+=("$p")
    log "stopped $name"
  fi
  rm -f "$STATE/run/$name.pid"
}

# wait_for DESCRIPTION SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local what=$1 limit=$2 i; shift 2
  for ((i = 0; i < limit * 4; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  die "timed out after ${limit}s waiting for $what (logs: $STATE/logs)"
}

kc() { kubectl --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# ---------------------------------------------------------------------------------------
# The node
# ---------------------------------------------------------------------------------------

# The bridge exists before any pod so the API server and a test registry can bind its
# address; the CNI bridge plugin then reuses it.
setup_network() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$BRIDGE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  # Services are kube-proxy's (start_kube_proxy). A pod reaching another pod through a
  # Service is routed through the host (forwarding) and, the two being on one bridge,
  # only passes kube-proxy's iptables rules when bridged traffic does (br_netfilter).
  sysctl -qw net.ipv4.ip_forward=1
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 ||
    die "net.bridge.bridge-nf-call-iptables cannot be set: the br_netfilter module is not loaded"
  mkdir -p "$STATE/cni/net.d" "$STATE/cni/ipam"
  cat >"$STATE/cni/net.d/10-vmdi.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "vmdi",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$BRIDGE_IP", "rangeStart": "${BRIDGE_IP%.*}.10"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

start_etcd() {
  start etcd "$(etcd_dir)/etcd" --name "$NODE_NAME" --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "$NODE_NAME=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level warn
  wait_for etcd 30 curl -fsS "http://127.0.0.1:$ETCD_CLIENT_PORT/health"
}

start_apiserver() {
  local pki="$STATE/pki"
  start kube-apiserver "$(k8s_dir)/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address 0.0.0.0 --secure-port "$API_PORT" --advertise-address "$BRIDGE_IP" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --client-ca-file "$pki/ca.crt" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --allow-privileged=true --profiling=false --v=1
  wait_for kube-apiserver 90 kc get --raw /readyz
}

start_controllers() {
  local pki="$STATE/pki"
  start kube-controller-manager "$(k8s_dir)/kube-controller-manager" \
    --kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --use-service-account-credentials --leader-elect=false --bind-address 127.0.0.1 \
    --profiling=false --v=1
  start kube-scheduler "$(k8s_dir)/kube-scheduler" \
    --kubeconfig "$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
    --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --profiling=false --v=1
}

start_containerd() {
  mkdir -p "$STATE/containerd" "$CONTAINERD_ROOT"
  local device_ownership
  device_ownership=$(cat "$STATE/containerd/device-ownership" 2>/dev/null || echo true)
  cat >"$STATE/containerd/config.toml" <<EOF
# containerd for the vmdiskimage test node only: own root, state and sockets, so the
# host's containerd (if any) is untouched.
version = 2
root = "$CONTAINERD_ROOT"
state = "$STATE/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[debug]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This host withholds CAP_SYS_RESOURCE even from root, so runc cannot lower a
  # process's oom_score_adj (the kubelet asks -998 for sandboxes): clamp instead of failing.
  restrict_oom_score_adj = true
  # Block volumes reach containers as device nodes owned by root; with this, they are
  # owned by the pod's runAsUser/runAsGroup instead, so a non-root populator can write
  # them. It is the node setting KubeVirt and CDI document for non-root block access.
  # containerd's own default is false: "cluster.sh device-ownership false" tries that.
  device_ownership_from_security_context = $device_ownership
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
EOF
  start containerd containerd --config "$STATE/containerd/config.toml"
  wait_for containerd 30 containerd_running
}

start_kubelet() {
  mkdir -p "$KUBELET_DIR"
  cat >"$STATE/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $STATE/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $STATE/pki/kubelet.crt
tlsPrivateKeyFile: $STATE/pki/kubelet.key
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
imageServiceEndpoint: unix://$CONTAINERD_SOCK
# This host has cgroup v1 controllers (cgroup2 only at /sys/fs/cgroup/unified).
cgroupDriver: cgroupfs
# Swap may be on and cannot be turned off here.
failSwapOn: false
memorySwap: {swapBehavior: NoSwap}
address: $BRIDGE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
podLogsDir: $STATE/pod-logs
# A test host: do not evict pods because the shared disk is busy.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 60
EOF
  start kubelet "$(k8s_dir)/kubelet" --config "$STATE/kubelet-config.yaml" \
    --kubeconfig "$STATE/kubelet.kubeconfig" --root-dir "$KUBELET_DIR" \
    --hostname-override "$NODE_NAME" --node-ip "$BRIDGE_IP" --v=1
  wait_for "node $NODE_NAME Ready" 120 \
    sh -c "kubectl --kubeconfig '$KUBECONFIG_FILE' get node '$NODE_NAME' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
}

# kube-proxy in iptables mode, as on most clusters: every Service (the `kubernetes` one
# included) is a set of DNAT rules to its endpoints, for pods and for this host alike.
# Conntrack tables are left as the host has them (the sysctls may be read-only here).
start_kube_proxy() {
  cat >"$STATE/kube-proxy-config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [$BRIDGE_IP/32]
iptables: {minSyncPeriod: 0s, syncPeriod: 30s}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  start kube-proxy "$(k8s_dir)/kube-proxy" --config "$STATE/kube-proxy-config.yaml" --v=1
  wait_for "kube-proxy's rules for the kubernetes service" 60 \
    sh -c "iptables -t nat -S KUBE-SERVICES 2>/dev/null | grep -q 'default/kubernetes:https'"
}

# Drop every iptables chain and rule kube-proxy made (it leaves them when stopped).
cleanup_kube_proxy() {
  [[ -x "$(k8s_dir)/kube-proxy" ]] || return 0
  "$(k8s_dir)/kube-proxy" --cleanup --v=0 >/dev/null 2>&1 || true
}

start_storage() {
  start csi-hostpath "$(csi_dir)/vmdi-csi-hostpath" --drivername "$CSI_DRIVER" --nodeid "$NODE_NAME" \
    --endpoint "$CSI_SOCK" --data-dir "$STATE/csi-data" --registration-dir "$KUBELET_DIR/plugins_registry"
  start csi-provisioner "$(provisioner_dir)/csi-provisioner" --csi-address "$CSI_SOCK" \
    --kubeconfig "$KUBECONFIG_FILE" --leader-election=false --extra-create-metadata --timeout 60s --v=2
  kc apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: $CSI_DRIVER}
spec:
  attachRequired: false     # no external-attacher: volumes are local to the node
  podInfoOnMount: false
  volumeLifecycleModes: [Persistent]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: hostpath
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: $CSI_DRIVER
reclaimPolicy: Delete
volumeBindingMode: Immediate
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: hostpath-wffc}
provisioner: $CSI_DRIVER
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
EOF
  wait_for "CSI driver registered on the node" 60 \
    sh -c "kubectl --kubeconfig '$KUBECONFIG_FILE' get csinode '$NODE_NAME' -o jsonpath='{.spec.drivers[*].name}' | grep -q '$CSI_DRIVER'"
}

api_up() { [[ -f "$KUBECONFIG_FILE" ]] && kc get --raw /readyz >/dev/null 2>&1; }

cmd_up() {
  local t0=$SECONDS
  ensure_packages
  build_binaries
  # An `up` on a complete, healthy node is a no-op.
  if api_up && running kubelet && running kube-proxy && running csi-hostpath && running csi-provisioner && running containerd; then
    log "already up"
    return 0
  fi
  # Anything less than a healthy node (a crash, a reboot, a killed session) leaves
  # stale pids, mounts and etcd data: clear it all and start from a clean slate.
  if [[ -e "$STATE" ]] || ip link show "$BRIDGE" >/dev/null 2>&1; then
    log "clearing what a previous node left behind"
    cmd_down
  fi
  mkdir -p "$STATE"
  make_pki
  setup_network
  start_containerd
  stop_pods # containers a killed containerd still has on record from a previous node
  build_images
  load_built_images
  start_etcd
  start_apiserver
  start_controllers
  start_kubelet
  start_kube_proxy
  start_storage
  # The VolumePopulator kind (config/populator registers VMDiskImage with it).
  kc apply -f "$HERE/volumepopulator-crd.yaml" >/dev/null
  wait_for "default service account" 60 kc -n default get serviceaccount default
  log "up in $((SECONDS - t0)) s; kubeconfig: $KUBECONFIG_FILE"
}

# ---------------------------------------------------------------------------------------
# Teardown: tolerant of anything already gone, so it is safe to run twice.
# ---------------------------------------------------------------------------------------

# Pods: stop every container through containerd so no shim or workload outlives it.
stop_pods() {
  containerd_running || return 0
  local t c
  for t in $(ctr_k8s tasks ls -q 2>/dev/null); do ctr_k8s tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
  sleep 1
  for t in $(ctr_k8s tasks ls -q 2>/dev/null); do ctr_k8s tasks delete -f "$t" >/dev/null 2>&1 || true; done
  for c in $(ctr_k8s containers ls -q 2>/dev/null); do ctr_k8s containers delete "$c" >/dev/null 2>&1 || true; done
}

# Shims are re-parented away from containerd; find ours by the socket path they carry.
kill_shims() {
  local p
  for p in $(pgrep -f -- "containerd-shim.*-address $CONTAINERD_SOCK" || true); do kill -KILL "$p" 2>/dev/null || true; done
}

unmount_under() {
  local dir=$1 m
  # Deepest first; /proc/mounts escapes spaces as \040, our paths have none.
  awk -v d="$dir" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}

detach_loops_under() {
  local dir=$1 dev file
  losetup --list --noheadings --output NAME,BACK-FILE 2>/dev/null | while read -r dev file; do
    if [[ "$file" == "$dir"/* ]]; then losetup -d "$dev" 2>/dev/null || true; fi
  done
}

# Network namespaces containerd made for our pods: named cni-*, their interfaces on our bridge.
remove_pod_netns() {
  local ns
  for ns in /var/run/netns/cni-*; do
    [[ -e "$ns" ]] || continue
    if [[ "$(ip -n "$(basename "$ns")" addr 2>/dev/null)" == *"inet ${BRIDGE_IP%.*}."* ]]; then
      ip netns delete "$(basename "$ns")" 2>/dev/null || { umount "$ns" 2>/dev/null; rm -f "$ns"; }
    fi
  done
}

# The kubelet's cgroup tree (cgroupfs driver): empty once every pod is gone.
remove_kubepods_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    if [[ -d "$d" ]]; then find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
  done
}

cmd_down() {
  stop csi-provisioner
  stop kube-proxy
  stop kubelet
  stop_pods
  stop csi-hostpath
  stop kube-scheduler
  stop kube-controller-manager
  stop kube-apiserver
  stop etcd
  stop containerd
  kill_shims
  remove_pod_netns
  remove_kubepods_cgroups
  # Loops before mounts: the kubelet's loop device is attached to a path under the
  # kubelet dir where the driver's loop device is bind-mounted; once unmounted, that
  # path no longer names it. The driver's own loop detaches when the kubelet's is gone.
  detach_loops_under "$STATE"
  unmount_under "$STATE/"
  unmount_under "$CONTAINERD_ROOT/"
  detach_loops_under "$STATE"
  cleanup_kube_proxy
  # The one DNAT rule nodes made before kube-proxy ran here.
  while iptables -t nat -D PREROUTING -d "$API_SERVICE_IP/32" -p tcp --dport 443 -m comment --comment "$IPT_COMMENT" \
    -j DNAT --to-destination "$BRIDGE_IP:$API_PORT" 2>/dev/null; do :; done
  ip link delete "$BRIDGE" 2>/dev/null || true
  if grep -q " $STATE/" /proc/mounts; then
    die "mounts remain under $STATE, not deleting it: $(grep " $STATE/" /proc/mounts | cut -d' ' -f2 | head -3)"
  fi
  rm -rf "$STATE"
  # Init reaps our exited components a moment later; wait, so `down` leaves no trace.
  local p i
  for p in "${STOPPED_PIDS[@]}"; do
    for i in $(seq 1 50); do [[ -e "/proc/$p" ]] || break; sleep 0.2; done
  done
  log "down"
}

# ---------------------------------------------------------------------------------------

# Restart containerd alone with another device_ownership_from_security_context; the
# running containers' shims outlive it, and the kubelet reconnects.
cmd_device_ownership() {
  [[ "${1:-}" == true || "${1:-}" == false ]] || die "usage: cluster.sh device-ownership true|false"
  running containerd || die "the node is not up"
  echo "$1" >"$STATE/containerd/device-ownership"
  stop containerd
  start_containerd
  wait_for "node $NODE_NAME Ready" 120 \
    sh -c "kubectl --kubeconfig '$KUBECONFIG_FILE' get node '$NODE_NAME' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
  log "containerd runs with device_ownership_from_security_context = $1"
}

cmd_status() {
  local n rc=0
  for n in containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy csi-hostpath csi-provisioner; do
    if running "$n"; then echo "$n: running (pid $(pid_of "$n"))"; else echo "$n: stopped"; rc=1; fi
  done
  if api_up; then kc get nodes -o wide; else echo "API: unreachable"; rc=1; fi
  return $rc
}

cmd_env() {
  cat <<EOF
export VMDI_CLUSTER_DIR=$STATE
export KUBECONFIG=$KUBECONFIG_FILE
export VMDI_BRIDGE_IP=$BRIDGE_IP
export VMDI_POD_CIDR=$POD_CIDR
export VMDI_CONTAINERD_ADDRESS=$CONTAINERD_SOCK
export VMDI_BASE_IMAGE=$BASE_IMAGE:latest
export VMDI_SMOKE_IMAGE=$SMOKE_IMAGE
export VMDI_ANSIBLE_OPERATOR=$(ansible_operator_dir)/ansible-operator
export VMDI_STORAGE_CLASS=hostpath
export VMDI_STORAGE_CLASS_WFFC=hostpath-wffc
EOF
}

main() {
  if [[ "${1:-}" != env && $EUID -ne 0 ]]; then
    die "run as root: the node mounts, creates bridges and runs containers"
  fi
  case "${1:-}" in
  build) ensure_packages; build_binaries ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  images) ensure_packages; build_binaries; build_images; build_project_images ;;
  build-image) shift; [[ $# -eq 3 ]] || die "usage: cluster.sh build-image DOCKERFILE CONTEXT TAG"
    ensure_packages; build_image "$@" ;;
  device-ownership) shift; cmd_device_ownership "$@" ;;
  *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
}

main "$@"
