#!/usr/bin/env bash
# Runs on a Jetson board as root, sent over ssh by setup-cluster.sh (`ssh HOST sudo bash -s -- CMD < node.sh`).
# One subcommand per step, each doing one thing; setup-cluster.sh reads `facts` and decides which to run.
#   facts                            key=value lines: jetson, l4t, model, arch, glibc, swap_kb, power_mode,
#                                    toolkit, containerd_template, k3s, k3s_role, hostname
#   disable-swap                     swap off now and at boot (JetPack's zram swap: nvzramconfig)
#   power-mode N                     nvpmodel -m N
#   install-toolkit                  nvidia-container-toolkit from JetPack's apt repository
#   containerd-template              k3s's containerd template with the nvidia runtime; restarts k3s if running
#   install-k3s server|agent VERSION [SERVER_URL]   the k3s installer (agents: K3S_TOKEN in the environment)
#   token | kubeconfig               print the join token / the admin kubeconfig (server)
# AKIDB_NODE_ROOT prefixes every file path (the tests run this script against a directory, not a board).
set -euo pipefail
R=${AKIDB_NODE_ROOT:-}
template="$R/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl"

# k3s writes config.toml from this template at every start (and overwrites config.toml itself), so the
# nvidia runtime goes here: k3s's own base template, plus the nvidia runtime as a runc-type runtime whose
# binary is nvidia-container-runtime. The RuntimeClass `nvidia` (handler nvidia) selects it.
desired_template() {
  cat <<'TMPL'
{{ template "base" . }}

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
  BinaryName = "/usr/bin/nvidia-container-runtime"
  SystemdCgroup = true
TMPL
}

facts() {
  local release="$R/etc/nv_tegra_release" l4t=none
  if [ -f "$release" ]; then
    echo jetson=yes
    # "# R35 (release), REVISION: 4.1, GCID: ..." -> 35.4.1
    l4t=$(sed -n 's/^# R\([0-9]*\) (release), REVISION: \([0-9.]*\).*/\1.\2/p' "$release" | head -1)
  else
    echo jetson=no
  fi
  echo "l4t=${l4t:-unknown}"
  echo "model=$(tr -d '\0' <"$R/proc/device-tree/model" 2>/dev/null || echo unknown)"
  echo "arch=$(dpkg --print-architecture)"
  echo "glibc=$(getconf GNU_LIBC_VERSION | awk '{print $2}')"
  echo "swap_kb=$(awk '/^SwapTotal:/ {print $2}' "$R/proc/meminfo")"
  echo "power_mode=$(nvpmodel -q 2>/dev/null | tail -1 || echo unknown)"
  echo "toolkit=$(nvidia-ctk --version 2>/dev/null | head -1 | awk '{print $NF}' || true)"
  if [ ! -f "$template" ]; then
    echo containerd_template=missing
  elif [ "$(cat "$template")" = "$(desired_template)" ]; then
    echo containerd_template=ok
  else
    echo containerd_template=different
  fi
  echo "k3s=$(k3s --version 2>/dev/null | head -1 | awk '{print $3}' || true)"
  if [ -f "$R/etc/systemd/system/k3s.service" ]; then
    echo k3s_role=server
  elif [ -f "$R/etc/systemd/system/k3s-agent.service" ]; then
    echo k3s_role=agent
  else
    echo k3s_role=none
  fi
  echo "hostname=$(cat "$R/etc/hostname")"
}

# The script arrives on stdin and bash reads it as it goes: everything runs from main, called on the last
# line, so no command can swallow the rest of the script by reading stdin.
main() {
  cmd=${1:?usage: node.sh facts|disable-swap|power-mode N|install-toolkit|containerd-template|install-k3s ...|token|kubeconfig}
  shift
  case "$cmd" in
    facts) facts ;;
    disable-swap)
      systemctl disable --now nvzramconfig
      swapoff -a
      ;;
    power-mode) nvpmodel -m "${1:?power-mode N}" ;;
    install-toolkit)
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nvidia-container-toolkit
      ;;
    containerd-template)
      mkdir -p "$(dirname "$template")"
      desired_template >"$template.tmp" && mv "$template.tmp" "$template"
      for unit in k3s k3s-agent; do
        if systemctl is-active --quiet "$unit"; then systemctl restart "$unit"; fi
      done
      ;;
    install-k3s)
      role=${1:?install-k3s server|agent VERSION [URL]} version=${2:?version}
      installer=$(mktemp)
      trap 'rm -f "$installer"' EXIT
      curl -sfL https://get.k3s.io -o "$installer"
      if [ "$role" = server ]; then
        INSTALL_K3S_VERSION=$version sh "$installer" server --write-kubeconfig-mode 0600
      else
        : "${K3S_TOKEN:?the agent join token comes in K3S_TOKEN}"
        INSTALL_K3S_VERSION=$version K3S_URL=${3:?server URL} K3S_TOKEN=$K3S_TOKEN sh "$installer" agent
      fi
      ;;
    token) cat "$R/var/lib/rancher/k3s/server/node-token" ;;
    kubeconfig) cat "$R/etc/rancher/k3s/k3s.yaml" ;;
    *) echo "node.sh: unknown command $cmd" >&2 && exit 2 ;;
  esac
}
main "$@"
