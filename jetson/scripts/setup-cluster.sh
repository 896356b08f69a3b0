#!/usr/bin/env bash
# Turns flashed Jetson boards into a k3s cluster, over ssh (each board: a sudo-capable user with the
# operator's key). Per board: checks it is a Jetson on L4T R35 (JetPack 5) or R36 (JetPack 6), aarch64,
# glibc >= 2.31; turns swap off (the kubelet's default refuses swap); sets the power mode when asked;
# installs nvidia-container-toolkit and k3s's containerd template with the nvidia runtime; installs the k3s
# server on the first board and joins the others as agents with its token; writes the kubeconfig; labels
# the nodes (akidb.io/serve=true on every board, akidb.io/model-store=true on the server).
# Idempotent: each step runs only when the board's facts say it is needed. --dry-run prints the changes.
#
#   setup-cluster.sh --server USER@HOST --agent USER@HOST [--agent ...] --k3s-version V
#                    [--power-mode N] [--kubeconfig FILE] [--dry-run]
# --k3s-version: a k3s release (e.g. v1.36.2+k3s1) of a Kubernetes minor that tests/run.sh validates the
# manifests for; pinned, so every board gets the same one and a rerun can tell it is installed.
set -euo pipefail
# shellcheck source=jetson/scripts/lib.sh
source "$(dirname "$0")/lib.sh"

k3s_version=""
kubeconfig=${KUBECONFIG:-$HOME/.kube/akidb-jetson.yaml}
power_mode=""
server=""
agents=()
while [ $# -gt 0 ]; do
  case "$1" in
    --server) server=${2:?--server USER@HOST}; shift 2 ;;
    --agent) agents+=("${2:?--agent USER@HOST}"); shift 2 ;;
    --k3s-version) k3s_version=${2:?}; shift 2 ;;
    --power-mode) power_mode=${2:?}; shift 2 ;;
    --kubeconfig) kubeconfig=${2:?}; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    *) die "unknown argument $1 (see the header of $0)" ;;
  esac
done
[ -n "$server" ] || die "--server USER@HOST is required"
[ -n "$k3s_version" ] || die "--k3s-version is required (a k3s release such as v1.36.2+k3s1; see jetson/README.md)"
export KUBECONFIG=$kubeconfig

declare -A fact
# read_facts HOST: the board's facts into fact[HOST.key]; refuses a board that cannot run the cluster.
read_facts() {
  local host=$1 line out
  out=$(remote "$host" facts) || die "$host: cannot read its facts over ssh"
  while IFS= read -r line; do fact[$host.${line%%=*}]=${line#*=}; done <<<"$out"
  [ "${fact[$host.jetson]}" = yes ] || die "$host is not a Jetson (no /etc/nv_tegra_release): refusing to set it up"
  case "${fact[$host.l4t]}" in
    35.* | 36.*) ;;
    *) die "$host: L4T ${fact[$host.l4t]} is not supported: this cluster needs JetPack 5 (L4T R35) or JetPack 6 (L4T R36)" ;;
  esac
  [ "${fact[$host.arch]}" = arm64 ] || die "$host: architecture ${fact[$host.arch]}, expected arm64"
  if [ "$(printf '%s\n2.31\n' "${fact[$host.glibc]}" | sort -V | head -1)" != 2.31 ]; then
    die "$host: glibc ${fact[$host.glibc]} is older than 2.31, which the akidb binaries need"
  fi
  say "$host: ${fact[$host.model]}, L4T ${fact[$host.l4t]}, glibc ${fact[$host.glibc]}, power mode ${fact[$host.power_mode]}, swap ${fact[$host.swap_kb]} kB, k3s ${fact[$host.k3s]:-none}"
}

# prepare HOST: swap, power mode, container toolkit, containerd template.
prepare() {
  local host=$1
  [ "${fact[$host.swap_kb]}" = 0 ] || remote_act "$host" disable-swap
  if [ -n "$power_mode" ] && [ "${fact[$host.power_mode]}" != "$power_mode" ]; then
    remote_act "$host" power-mode "$power_mode"
  fi
  [ -n "${fact[$host.toolkit]}" ] || remote_act "$host" install-toolkit
  [ "${fact[$host.containerd_template]}" = ok ] || remote_act "$host" containerd-template
}

hosts=("$server" ${agents[@]+"${agents[@]}"})
for host in "${hosts[@]}"; do read_facts "$host"; done
for host in "${hosts[@]}"; do prepare "$host"; done

url="https://$(host_addr "$server"):6443"
server_changed=0
if [ "${fact[$server.k3s]}" != "$k3s_version" ] || [ "${fact[$server.k3s_role]}" != server ]; then
  remote_act "$server" install-k3s server "$k3s_version"
  server_changed=1
fi

if [ ${#agents[@]} -gt 0 ]; then
  for agent in "${agents[@]}"; do
    [ "${fact[$agent.k3s]}" != "$k3s_version" ] || [ "${fact[$agent.k3s_role]}" != agent ] || continue
    printf '+ ssh %s node.sh install-k3s agent %s %s (K3S_TOKEN from the server, on stdin)\n' "$agent" "$k3s_version" "$url"
    [ "$DRY_RUN" = 1 ] && continue
    token=$(remote "$server" token) || die "$server: cannot read the join token"
    # The token goes on stdin ahead of node.sh, never on a command line (ps, shell history, this log).
    # shellcheck disable=SC2086 # SSH_OPTS is a list of options
    { printf 'export K3S_TOKEN=%q\n' "$token" && cat "$NODE_SCRIPT"; } |
      ssh $SSH_OPTS "$agent" sudo bash -s -- install-k3s agent "$k3s_version" "$url" ||
      die "$agent: installing the k3s agent failed (see above); rerun setup-cluster.sh once fixed: the steps already done are skipped"
  done
fi

# The admin kubeconfig, pointed at the server's address instead of 127.0.0.1.
if [ "$server_changed" = 1 ] || [ ! -f "$kubeconfig" ]; then
  printf '+ write %s (the server kubeconfig, server %s)\n' "$kubeconfig" "$url"
  if [ "$DRY_RUN" != 1 ]; then
    mkdir -p "$(dirname "$kubeconfig")"
    (umask 077 && remote "$server" kubeconfig | sed "s#https://127.0.0.1:6443#$url#" >"$kubeconfig.tmp")
    mv "$kubeconfig.tmp" "$kubeconfig"
  fi
fi

# label NODE KEY=VALUE: only when the node does not carry it yet.
label() {
  local node=$1 pair=$2 key have
  key=${pair%%=*}
  have=$(kubectl get node "$node" -o "jsonpath={.metadata.labels.${key//./\\.}}" 2>/dev/null || true)
  [ "$have" = "${pair#*=}" ] || act kubectl label node "$node" "$pair" --overwrite
}
for host in "${hosts[@]}"; do
  node=${fact[$host.hostname]}
  if [ "$DRY_RUN" != 1 ]; then
    kubectl wait --for=condition=Ready "node/$node" --timeout=300s >/dev/null ||
      die "node $node ($host) did not become Ready within 300 s: see 'journalctl -u k3s*' on the board"
  fi
  label "$node" akidb.io/serve=true
  [ "$host" != "$server" ] || label "$node" akidb.io/model-store=true
done
say "cluster: server $server, ${#agents[@]} agent(s), k3s $k3s_version; kubeconfig $kubeconfig"
