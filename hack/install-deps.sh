#!/usr/bin/env bash
# Installs the Debian packages the tests use, skipping apt entirely when all are present.
set -euo pipefail

packages=(
  # registry tier: the registry, image tools, disk tools
  docker-registry skopeo umoci qemu-utils zstd xz-utils apache2-utils openssl
  # ISO 9660 images, as driver CDs (virtio-win) are published in containerDisks
  xorriso
  # local cluster and image builds (hack/cluster)
  buildah containerd runc containernetworking-plugins debootstrap iproute2 iptables
  conntrack socat ethtool e2fsprogs util-linux curl tar time
)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
fi

# skopeo and buildah refuse to work without a signature policy; keep one that exists.
if [[ ! -f /etc/containers/policy.json ]]; then
  mkdir -p /etc/containers
  echo '{"default":[{"type":"insecureAcceptAnything"}]}' > /etc/containers/policy.json
fi
