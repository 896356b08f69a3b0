#!/usr/bin/env bash
# Two ways back, for the operator.
#   rollback.sh [--dry-run] [--overlay jetson|origin] undo
#       akidb serve (and model-server) to their previous revision (`kubectl rollout undo`), then waits for
#       the rollout. A second undo goes forward again, as kubectl's does.
#   rollback.sh [--dry-run] [--timeout 120s] drain NODE
#       takes one board out of service gracefully: cordon; evict its other pods through the eviction API
#       (`kubectl drain`, which honours PodDisruptionBudgets); then its akidb-serve pod. kubectl drain leaves
#       DaemonSet pods alone, and the DaemonSet would recreate an evicted one, so: check the
#       PodDisruptionBudget allows a disruption now, take the node's akidb.io/serve label off (the DaemonSet
#       then deletes the pod: its endpoint leaves the Service, preStop waits 5 s for Traefik to notice,
#       SIGTERM lets akidb serve finish its in-flight requests and exit) and wait until the pod is gone.
#   rollback.sh [--dry-run] uncordon NODE
#       puts the board back: label, uncordon.
# Idempotent: a step whose result is already there is skipped. --dry-run prints the changes.
set -euo pipefail
# shellcheck source=jetson/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

overlay=jetson
timeout=120s
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1; shift ;;
    --overlay) overlay=${2:?}; shift 2 ;;
    --timeout) timeout=${2:?}; shift 2 ;;
    *) break ;;
  esac
done
case "$overlay" in
  jetson | jetson-gpu) workload=daemonset/akidb-serve ;;
  origin) workload=deployment/akidb-serve ;;
  *) die "unknown overlay $overlay (jetson, jetson-gpu, origin)" ;;
esac
cmd=${1:-}
[ $# -gt 0 ] && shift

serve_pods_on() {
  kubectl -n akidb get pods -l app.kubernetes.io/name=akidb-serve --field-selector "spec.nodeName=$1" \
    -o 'jsonpath={.items[*].metadata.name}'
}

case "$cmd" in
  undo)
    act kubectl -n akidb rollout undo "$workload"
    act kubectl -n akidb rollout undo deployment/model-server
    act kubectl -n akidb rollout status "$workload" "--timeout=$timeout" ||
      die "$workload did not become ready after the undo: look at 'kubectl -n akidb get pods'"
    say "rolled back $workload and deployment/model-server to their previous revisions"
    ;;
  drain)
    node=${1:?drain NODE}
    kubectl get node "$node" >/dev/null || die "no node $node in the cluster"
    [ "$(kubectl get node "$node" -o 'jsonpath={.spec.unschedulable}')" = true ] || act kubectl cordon "$node"
    others=$(kubectl get pods -A --field-selector "spec.nodeName=$node" \
      -o 'jsonpath={range .items[?(@.metadata.ownerReferences[0].kind!="DaemonSet")]}{.metadata.namespace}/{.metadata.name} {end}')
    if [ -n "$others" ]; then
      act kubectl drain "$node" --ignore-daemonsets --delete-emptydir-data "--timeout=$timeout" ||
        die "drain of $node stopped (a PodDisruptionBudget allows no eviction now?): it stays cordoned; pods left: $others"
    fi
    pods=$(serve_pods_on "$node")
    label=$(kubectl get node "$node" -o 'jsonpath={.metadata.labels.akidb\.io/serve}')
    if [ -n "$pods" ] || [ -n "$label" ]; then
      allowed=$(kubectl -n akidb get pdb akidb-serve -o 'jsonpath={.status.disruptionsAllowed}')
      if [ -n "$pods" ] && [ "${allowed:-0}" -lt 1 ]; then
        die "PodDisruptionBudget akidb-serve allows no disruption now: $node stays cordoned and its akidb-serve pod ($pods) keeps serving; retry once the other boards are ready"
      fi
      [ -z "$label" ] || act kubectl label node "$node" akidb.io/serve-
      for pod in $pods; do
        act kubectl -n akidb wait --for=delete "pod/$pod" "--timeout=$timeout" ||
          die "pod $pod on $node still there after $timeout: in-flight requests or a stuck shutdown; look at its logs"
      done
    fi
    say "$node drained: cordoned, other pods evicted (${others:-none}), akidb-serve ${pods:-(none running)} finished its in-flight requests and exited; 'rollback.sh uncordon $node' brings it back"
    ;;
  uncordon)
    node=${1:?uncordon NODE}
    [ "$(kubectl get node "$node" -o 'jsonpath={.metadata.labels.akidb\.io/serve}')" = true ] ||
      act kubectl label node "$node" akidb.io/serve=true --overwrite
    [ "$(kubectl get node "$node" -o 'jsonpath={.spec.unschedulable}')" != true ] || act kubectl uncordon "$node"
    say "$node back in service (the DaemonSet starts its akidb-serve pod; /readyz gates traffic until it is warm)"
    ;;
  *) die "usage: rollback.sh [--dry-run] [--overlay jetson|origin] [--timeout 120s] undo | drain NODE | uncordon NODE" ;;
esac
