#!/usr/bin/env bash
# Installs the operator into the cluster of the current kubeconfig with kustomize, or
# removes it, as `make deploy` / `make undeploy` do in operator-sdk projects.
#
#   hack/deploy.sh deploy      config/default (+ config/populator where the VolumePopulator
#                              CRD exists), then wait for the manager to be ready
#   hack/deploy.sh undeploy    VMDiskImages first, while the operator still runs to
#                              finalize them; then the operator, its RBAC and the CRD
#
# What undeploy does to claims and imports in flight is in the README ("Uninstall").
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KUBECTL="${KUBECTL:-kubectl}"
NS=vmdiskimage-system
DEPLOYMENT=vmdiskimage-controller-manager
TIMEOUT="${TIMEOUT:-300s}"

log() { printf '%s deploy: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
has_crd() { "$KUBECTL" get crd "$1" >/dev/null 2>&1; }

deploy() {
  # Server-side: the CRD is too large for the last-applied annotation of a client-side apply.
  "$KUBECTL" apply --server-side --force-conflicts -k "$REPO/config/default"
  "$KUBECTL" wait --for=condition=Established crd/vmdiskimages.vm.example.com --timeout=60s
  if has_crd volumepopulators.populator.storage.k8s.io; then
    "$KUBECTL" apply --server-side -k "$REPO/config/populator"
  else
    log "no VolumePopulator CRD in this cluster: the VMDiskImage populator is not registered (config/populator)"
  fi
  "$KUBECTL" -n "$NS" rollout status "deployment/$DEPLOYMENT" --timeout="$TIMEOUT"
}

undeploy() {
  if has_crd vmdiskimages.vm.example.com; then
    # The operator finalizes each one: imports in flight stop, empty PVCs it created go.
    log "deleting every VMDiskImage while the operator can still finalize them"
    "$KUBECTL" delete vmdiskimages --all --all-namespaces --wait --timeout="$TIMEOUT"
  fi
  # The manager first, and wait until its pod is gone: while the claim marker runs it
  # would label again the claims released below.
  "$KUBECTL" -n "$NS" delete deployment "$DEPLOYMENT" --ignore-not-found --wait --timeout="$TIMEOUT"
  "$KUBECTL" -n "$NS" wait --for=delete pod -l control-plane=controller-manager --timeout="$TIMEOUT" 2>/dev/null || true
  release_claims
  if has_crd volumepopulators.populator.storage.k8s.io; then
    "$KUBECTL" delete --ignore-not-found -k "$REPO/config/populator"
  fi
  "$KUBECTL" delete --ignore-not-found --wait --timeout="$TIMEOUT" -k "$REPO/config/default"
}

# Claims left Pending by an aborted import (or naming a VMDiskImage that never existed)
# keep the operator's finalizer and label; with no operator to remove them, such a claim
# could never be deleted. An operator installed later labels them again.
release_claims() {
  local claim
  for claim in $("$KUBECTL" get pvc --all-namespaces -l vm.example.com/populate \
    -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}{"\n"}{end}'); do
    log "releasing claim $claim (finalizer and label of the operator)"
    "$KUBECTL" -n "${claim%%/*}" get pvc "${claim#*/}" -o json |
      python3 -c '
import json, sys
claim = json.load(sys.stdin)
finalizers = claim["metadata"].get("finalizers") or []
keep = [f for f in finalizers if f != "vm.example.com/populate"]
print(json.dumps({"metadata": {"finalizers": keep or None,
                               "labels": {"vm.example.com/populate": None},
                               "resourceVersion": claim["metadata"]["resourceVersion"]}}))' |
      "$KUBECTL" -n "${claim%%/*}" patch pvc "${claim#*/}" --type merge --patch-file /dev/stdin
  done
}

case "${1:-}" in
deploy) deploy ;;
undeploy) undeploy ;;
*) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
