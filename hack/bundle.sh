#!/usr/bin/env bash
# Generates the OLM bundle the operator-sdk way, as `make bundle` does in operator-sdk
# projects: `operator-sdk generate kustomize manifests` keeps the CSV base in
# config/manifests/bases in step with PROJECT, then `kustomize build config/manifests`
# (through a small overlay that sets the images) is piped into `operator-sdk generate
# bundle`, which writes bundle/ and bundle.Dockerfile; the result is validated with the
# checks OperatorHub runs.
#
#   hack/bundle.sh        (make bundle; VERSION, IMG, POPULATOR_IMG from the environment)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

VERSION="${VERSION:?VERSION is required, e.g. 0.1.0}"
IMG="${IMG:?IMG is required, name:tag}"
POPULATOR_IMG="${POPULATOR_IMG:?POPULATOR_IMG is required, name:tag}"
CHANNELS="${CHANNELS:-alpha}"
DEFAULT_CHANNEL="${DEFAULT_CHANNEL:-alpha}"
OPERATOR_SDK="$(hack/operator-sdk.sh)"

[[ "$IMG" == *:* && "$POPULATOR_IMG" == *:* ]] || { echo "IMG and POPULATOR_IMG must be name:tag" >&2; exit 2; }

"$OPERATOR_SDK" generate kustomize manifests --quiet --interactive=false

# The images go in through an overlay, so config/ keeps the local node's defaults.
overlay="$REPO/build/bundle-kustomize"
rm -rf "$overlay"
mkdir -p "$overlay"
cat >"$overlay/kustomization.yaml" <<YAML
resources:
  - ../../config/manifests
images:
  - name: localhost/vmdiskimage-operator
    newName: ${IMG%:*}
    newTag: ${IMG##*:}
patches:
  - target: {kind: Deployment, name: vmdiskimage-controller-manager}
    patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata: {name: vmdiskimage-controller-manager, namespace: vmdiskimage-system}
      spec:
        template:
          spec:
            containers:
              - name: manager
                env:
                  - name: RELATED_IMAGE_POPULATOR
                    value: $POPULATOR_IMG
  - target: {kind: ClusterServiceVersion}
    patch: |-
      - op: replace
        path: /metadata/annotations/containerImage
        value: $IMG
YAML

kubectl kustomize "$overlay" |
  "$OPERATOR_SDK" generate bundle --quiet --overwrite --version "$VERSION" \
    --package vmdiskimage-operator --channels "$CHANNELS" --default-channel "$DEFAULT_CHANNEL" \
    --output-dir bundle
"$OPERATOR_SDK" bundle validate ./bundle --select-optional suite=operatorframework
