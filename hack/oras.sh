#!/usr/bin/env bash
# Builds the oras CLI from its Go module (once; cached by version outside the repo, like
# the local node's binaries) and prints the binary's path. The registry tier pushes
# disks with it the way users do (`oras push REF disk.img`, its defaults).
#
#   hack/oras.sh            build if missing, print the path
set -euo pipefail

VERSION=v1.3.6
MODULE=oras.land/oras
CACHE="${VMDI_CACHE:-$HOME/.cache/vmdiskimage}"
OUT="$CACHE/bin/oras-$VERSION"

log() { printf '%s oras: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ ! -x "$OUT/oras" ]]; then
  command -v go >/dev/null || export PATH=$PATH:/usr/local/go/bin
  mkdir -p "$OUT"
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  log "building oras $VERSION into $OUT (half a minute the first time)"
  start=$SECONDS
  # go install checks the module against the checksum database; the binary is written
  # to a scratch directory and renamed, so an interrupted build leaves nothing trusted.
  GOBIN="$scratch" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "$MODULE/cmd/oras@$VERSION"
  mv "$scratch/oras" "$OUT/oras"
  log "built in $((SECONDS - start)) s"
fi
echo "$OUT/oras"
