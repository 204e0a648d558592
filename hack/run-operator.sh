#!/usr/bin/env bash
# Runs the operator on this machine against the current kubeconfig, as `make run` does
# for operator-sdk projects: the real ansible-operator binary with this checkout's
# watches.yaml, roles and collection, and the claim marker beside it. Ctrl-C stops both.
#
#   hack/run-operator.sh [ansible-operator run flags...]
#
# Environment: KUBECONFIG (required unless ~/.kube/config exists), ANSIBLE_OPERATOR
# (binary; default build/ansible-operator), RELATED_IMAGE_POPULATOR (populator image;
# default localhost/vmdiskimage-populator:dev), VENV (default .venv).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(cd "$REPO" && realpath -m "${VENV:-.venv}")"
OPERATOR="${ANSIBLE_OPERATOR:-$REPO/build/ansible-operator}"

[[ -x "$OPERATOR" ]] || { echo "no ansible-operator at $OPERATOR: run 'make build/ansible-operator'" >&2; exit 1; }
[[ -x "$VENV/bin/ansible-runner" ]] || { echo "no ansible-runner in $VENV: run 'make venv'" >&2; exit 1; }
python_ok=$("$VENV/bin/python" -c 'import ansible_runner_http' 2>&1) ||
  { echo "ansible-runner-http is missing in $VENV ($python_ok): run 'make venv'" >&2; exit 1; }

# ansible-runner runs each reconcile in its own directory: name everything absolutely.
export PATH="$VENV/bin:$PATH"
export ANSIBLE_CONFIG="$REPO/ansible.cfg"
export ANSIBLE_ROLES_PATH="$REPO/roles"
export ANSIBLE_COLLECTIONS_PATH="$REPO/.ansible/collections"
export ANSIBLE_GATHERING=explicit
export ANSIBLE_LOCAL_TEMP="${TMPDIR:-/tmp}/vmdiskimage-ansible-tmp"
export RELATED_IMAGE_POPULATOR="${RELATED_IMAGE_POPULATOR:-localhost/vmdiskimage-populator:dev}"

"$VENV/bin/vmdiskimage-claim-marker" &
marker=$!
trap 'kill "$marker" 2>/dev/null || true; wait "$marker" 2>/dev/null || true' EXIT

cd "$REPO"
# Not exec: the trap must outlive ansible-operator to stop the claim marker.
"$OPERATOR" run --watches-file="$REPO/watches.yaml" \
  --metrics-bind-address="${METRICS_ADDRESS:-127.0.0.1:8383}" \
  --health-probe-bind-address="${HEALTH_ADDRESS:-127.0.0.1:6789}" "$@" &
operator=$!
trap 'kill "$operator" "$marker" 2>/dev/null || true; wait "$operator" "$marker" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
wait "$operator"
