#!/usr/bin/env bash
# Builds operator-sdk from its Go module (once; cached by version outside the repo, like
# the local node's binaries) and prints the binary's path.
#
#   hack/operator-sdk.sh            build if missing, print the path
#
# The Go module proxy reachable here serves operator-sdk v1.42.0's source zip by exact
# version but answers 403 for its go.mod (and refuses the version list). The go.mod is
# the zip's own, so this takes it from there: a first `go mod download` into a scratch
# module cache fetches the zip (a placeholder go.mod, checksums off, for that one step),
# and the real build then reads the zip and its go.mod from a local file proxy placed
# before the real one. The helper module's go.sum (gomod/operator-sdk) pins both hashes,
# so the build fails if either is not upstream's.
set -euo pipefail

VERSION=v1.42.0
MODULE=github.com/operator-framework/operator-sdk
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${VMDI_CACHE:-$HOME/.cache/vmdiskimage}"
OUT="$CACHE/bin/operator-sdk-$VERSION"

log() { printf '%s operator-sdk: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ ! -x "$OUT/operator-sdk" ]]; then
  command -v go >/dev/null || export PATH=$PATH:/usr/local/go/bin
  seed="$CACHE/goproxy-seed"
  at="$seed/$MODULE/@v"
  if [[ ! -f "$at/$VERSION.zip" || ! -f "$at/$VERSION.mod" ]]; then
    log "fetching the $MODULE@$VERSION source zip"
    scratch=$(mktemp -d)
    trap 'chmod -R u+w "$scratch" 2>/dev/null; rm -rf "$scratch"' EXIT
    mkdir -p "$scratch/proxy/$MODULE/@v" "$scratch/mod"
    printf 'module %s\n' "$MODULE" >"$scratch/proxy/$MODULE/@v/$VERSION.mod"
    printf '{"Version":"%s"}\n' "$VERSION" >"$scratch/proxy/$MODULE/@v/$VERSION.info"
    printf 'module scratch\n\ngo 1.24\n' >"$scratch/mod/go.mod"
    (cd "$scratch/mod" && GOMODCACHE="$scratch/cache" GOFLAGS=-mod=mod GONOSUMDB="$MODULE" GOSUMDB=off \
      GOPROXY="file://$scratch/proxy,${GOPROXY:-https://proxy.golang.org}" \
      go mod download "$MODULE@$VERSION")
    mkdir -p "$at"
    cp "$scratch/cache/cache/download/$MODULE/@v/$VERSION.zip" "$at/.zip.tmp"
    python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
      "$at/.zip.tmp" "$MODULE@$VERSION/go.mod" >"$at/$VERSION.mod"
    printf '{"Version":"%s"}\n' "$VERSION" >"$at/$VERSION.info"
    mv "$at/.zip.tmp" "$at/$VERSION.zip"
  fi
  mkdir -p "$OUT"
  log "building operator-sdk $VERSION into $OUT (a few minutes the first time)"
  # Upstream builds with the pure-Go OpenPGP of containers/image (no cgo, no gpgme).
  start=$SECONDS
  ld="-s -w"
  for v in Version GitVersion ImageVersion; do ld+=" -X $MODULE/internal/version.$v=$VERSION"; done
  (cd "$HERE/cluster/gomod/operator-sdk" && CGO_ENABLED=0 GOFLAGS=-mod=mod \
    GOPROXY="file://$seed,${GOPROXY:-https://proxy.golang.org}" \
    go build -trimpath -tags containers_image_openpgp -ldflags "$ld" -o "$OUT/.operator-sdk.tmp" "$MODULE/cmd/operator-sdk")
  mv "$OUT/.operator-sdk.tmp" "$OUT/operator-sdk"
  log "built in $((SECONDS - start)) s"
fi
echo "$OUT/operator-sdk"
