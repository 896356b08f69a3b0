#!/usr/bin/env bats
# setup-cluster.sh, deploy.sh and rollback.sh against fake ssh, kubectl, k3s (and the board commands
# behind ssh: fakes/remote/) that record every call in $FAKE_LOG and can be told to fail ($FAKE_FAIL).
# Boards are directories ($FAKE_BOARDS/HOST) that node.sh reads and writes through AKIDB_NODE_ROOT.

setup() {
  root=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
  scripts=$root/jetson/scripts
  export PATH="$BATS_TEST_DIRNAME/fakes:$PATH"
  export FAKE_LOG=$BATS_TEST_TMPDIR/calls.log FAKE_STATE=$BATS_TEST_TMPDIR/state
  export FAKE_BOARDS=$BATS_TEST_TMPDIR/boards FAKE_GOLDEN=${GOLDEN_DIR:-$root/../shared/golden}
  export KUBECONFIG=$BATS_TEST_TMPDIR/kubeconfig
  : >"$FAKE_LOG"
  mkdir -p "$FAKE_STATE/kube"
}

# board HOST [L4T_RELEASE_LINE]: a flashed Orin Nano with zram swap, nothing installed; its node object.
board() {
  local b=$FAKE_BOARDS/$1
  mkdir -p "$b/etc" "$b/proc/device-tree" "$FAKE_STATE/kube/node-$1"
  echo "${2-# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64}" >"$b/etc/nv_tegra_release"
  printf 'NVIDIA Jetson Orin Nano Developer Kit\0' >"$b/proc/device-tree/model"
  printf 'MemTotal:        7620000 kB\nSwapTotal:       3810000 kB\n' >"$b/proc/meminfo"
  echo "$1" >"$b/etc/hostname"
}
five_boards() { for i in 0 1 2 3 4; do board "jetson-$i"; done; }
setup_args=(--server ubuntu@jetson-0 --agent ubuntu@jetson-1 --agent ubuntu@jetson-2 --agent ubuntu@jetson-3
  --agent ubuntu@jetson-4 --power-mode 2 --k3s-version v1.36.2+k3s1)
# refute CMD...: fails the test when CMD succeeds (bash's `! CMD` does not stop a bats test under set -e).
refute() {
  if "$@"; then
    echo "expected to fail: $*" >&2
    return 1
  fi
}
# The changes a run printed: its `+ ...` lines.
changes() { grep '^+ ' <<<"$1" || true; }

@test "setup-cluster: the dry run changes nothing and prints exactly the changes the real run makes" {
  five_boards
  run "$scripts/setup-cluster.sh" "${setup_args[@]}" --dry-run
  [ "$status" -eq 0 ]
  dry=$(changes "$output")
  [ -n "$dry" ]
  refute grep -Eq 'install-k3s|disable-swap|k3s-installer|apt-get|swapoff|nvpmodel -m|label node' "$FAKE_LOG"
  [ ! -e "$FAKE_BOARDS/jetson-0/.k3s-version" ]

  run "$scripts/setup-cluster.sh" "${setup_args[@]}"
  [ "$status" -eq 0 ]
  [ "$(changes "$output")" = "$dry" ]
  # What the real run did, board by board.
  for i in 0 1 2 3 4; do
    b=$FAKE_BOARDS/jetson-$i
    grep -q '^SwapTotal: *0 kB' "$b/proc/meminfo"
    [ "$(cat "$b/.power-mode")" = 2 ]
    [ -f "$b/.toolkit" ]
    grep -q 'runtimes.nvidia' "$b/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl"
    [ "$(cat "$b/.k3s-version")" = v1.36.2+k3s1 ]
    [ "$(cat "$FAKE_STATE/kube/node-jetson-$i/labels/akidb.io_serve")" = true ]
  done
  [ -f "$FAKE_BOARDS/jetson-0/etc/systemd/system/k3s.service" ]
  [ -f "$FAKE_BOARDS/jetson-3/etc/systemd/system/k3s-agent.service" ]
  [ "$(cat "$FAKE_STATE/kube/node-jetson-0/labels/akidb.io_model-store")" = true ]
  [ ! -e "$FAKE_STATE/kube/node-jetson-1/labels/akidb.io_model-store" ]
  grep -q '^\[jetson-2\] k3s-installer agent INSTALL_K3S_VERSION=v1.36.2+k3s1 K3S_URL=https://jetson-0:6443 K3S_TOKEN=set' "$FAKE_LOG"
  grep -q 'server: https://jetson-0:6443' "$KUBECONFIG"
}

@test "setup-cluster: the join token reaches the agents without appearing on any command line" {
  five_boards
  run "$scripts/setup-cluster.sh" "${setup_args[@]}"
  [ "$status" -eq 0 ]
  [ "$(cat "$FAKE_BOARDS/jetson-4/.k3s-join-token")" = "K10fake-join-token::server:s3cret" ]
  refute grep -q s3cret "$FAKE_LOG"
  refute grep -q s3cret <<<"$output"
}

@test "setup-cluster: a second run changes nothing" {
  five_boards
  "$scripts/setup-cluster.sh" "${setup_args[@]}" >/dev/null 2>&1
  : >"$FAKE_LOG"
  run "$scripts/setup-cluster.sh" "${setup_args[@]}"
  [ "$status" -eq 0 ]
  [ -z "$(changes "$output")" ]
  # Only looks: facts over ssh, and kubectl get/wait.
  refute grep -Ev '^ssh .* facts$|^\[jetson-[0-9]\] (dpkg|getconf|nvpmodel -q|nvidia-ctk|k3s --version)|^kubectl (get|wait) ' "$FAKE_LOG"
}

@test "setup-cluster: refuses a board that is not a Jetson, before changing anything" {
  five_boards
  rm "$FAKE_BOARDS/jetson-3/etc/nv_tegra_release"
  run "$scripts/setup-cluster.sh" "${setup_args[@]}"
  [ "$status" -eq 1 ]
  [[ "$output" == *"ubuntu@jetson-3 is not a Jetson (no /etc/nv_tegra_release): refusing"* ]]
  [ -z "$(changes "$output")" ]
  refute grep -Eq 'install|swapoff|label' "$FAKE_LOG"
}

@test "setup-cluster: refuses JetPack 4 (L4T R32) and a glibc older than 2.31" {
  five_boards
  echo "# R32 (release), REVISION: 7.1, GCID: 29818004" >"$FAKE_BOARDS/jetson-1/etc/nv_tegra_release"
  run "$scripts/setup-cluster.sh" "${setup_args[@]}"
  [ "$status" -eq 1 ]
  [[ "$output" == *"ubuntu@jetson-1: L4T 32.7.1 is not supported: this cluster needs JetPack 5 (L4T R35) or JetPack 6 (L4T R36)"* ]]
  five_boards
  echo 2.27 >"$FAKE_BOARDS/jetson-2/.glibc"
  run "$scripts/setup-cluster.sh" "${setup_args[@]}"
  [ "$status" -eq 1 ]
  [[ "$output" == *"ubuntu@jetson-2: glibc 2.27 is older than 2.31"* ]]
}

@test "setup-cluster: a failure mid-way stops with the failing step named, and a rerun finishes the job" {
  five_boards
  FAKE_FAIL='^ssh ubuntu@jetson-1 .*install-k3s agent' run "$scripts/setup-cluster.sh" "${setup_args[@]}"
  [ "$status" -eq 1 ]
  [[ "$output" == *"ubuntu@jetson-1: installing the k3s agent failed (see above); rerun setup-cluster.sh once fixed: the steps already done are skipped"* ]]
  [ ! -e "$FAKE_BOARDS/jetson-1/.k3s-version" ]
  [ -f "$FAKE_BOARDS/jetson-0/.k3s-version" ]
  run "$scripts/setup-cluster.sh" "${setup_args[@]}"
  [ "$status" -eq 0 ]
  # The server is not installed twice; the agents are joined now.
  refute grep -q '^+ ssh ubuntu@jetson-0 node.sh install-k3s' <<<"$output"
  grep -q '^+ ssh ubuntu@jetson-1 node.sh install-k3s agent' <<<"$output"
}

# images TAG: fake OCI archives (an index.json with the ref name, as images/build.sh writes them).
images() {
  local dir=$BATS_TEST_TMPDIR/images image
  mkdir -p "$dir/x"
  echo "$1" >"$dir/TAG"
  for image in akidb-serve model-server; do
    printf '{"manifests": [{"annotations": {"org.opencontainers.image.ref.name": "docker.io/library/%s:%s"}}]}' \
      "$image" "$1" >"$dir/x/index.json"
    tar -C "$dir/x" -cf "$dir/$image-arm64.oci.tar" index.json
  done
}
deploy_args() {
  echo --url http://jetson-0 --images "$BATS_TEST_TMPDIR/images" --golden "$FAKE_GOLDEN"
  for i in 0 1 2 3 4; do echo --node "ubuntu@jetson-$i"; done
}

@test "deploy: the dry run prints exactly what the real run does; images land on every node, then apply, rollout, smoke" {
  five_boards
  images 0.1.0-abc
  # shellcheck disable=SC2046
  run "$scripts/deploy.sh" $(deploy_args) --dry-run
  [ "$status" -eq 0 ]
  dry=$(changes "$output")
  refute grep -Eq 'images import|apply|rollout|^curl' "$FAKE_LOG"
  # shellcheck disable=SC2046
  run "$scripts/deploy.sh" $(deploy_args)
  [ "$status" -eq 0 ]
  [ "$(changes "$output")" = "$dry" ]
  for i in 0 1 2 3 4; do
    grep -qx 'docker.io/library/akidb-serve:0.1.0-abc' "$FAKE_BOARDS/jetson-$i/.images"
    grep -qx 'docker.io/library/model-server:0.1.0-abc' "$FAKE_BOARDS/jetson-$i/.images"
  done
  [ "$(cat "$FAKE_STATE/kube/applied-tag")" = 0.1.0-abc ]
  grep -q '^kubectl -n akidb rollout status daemonset/akidb-serve' "$FAKE_LOG"
  grep -q '^curl .*http://jetson-0/v1/embed' "$FAKE_LOG"
  [[ "$output" == *"cosine 1.000000 to the reference"* ]]
  refute grep -q 'rollout undo' "$FAKE_LOG"
}

@test "deploy: a second run changes nothing (still checks the rollout and the smoke test)" {
  five_boards
  images 0.1.0-abc
  # shellcheck disable=SC2046
  "$scripts/deploy.sh" $(deploy_args) >/dev/null 2>&1
  : >"$FAKE_LOG"
  # shellcheck disable=SC2046
  run "$scripts/deploy.sh" $(deploy_args)
  [ "$status" -eq 0 ]
  refute grep -Eq 'images import|kubectl apply|rollout undo' "$FAKE_LOG"
  grep -q '^curl ' "$FAKE_LOG"
}

@test "deploy: a failing smoke test rolls back by itself and says so" {
  five_boards
  images 0.1.0-bad
  # shellcheck disable=SC2046
  FAKE_SMOKE=wrong run "$scripts/deploy.sh" $(deploy_args)
  [ "$status" -eq 1 ]
  [[ "$output" == *"the service answers, but not with the model's embedding"* ]]
  [[ "$output" == *"deploy of 0.1.0-bad failed and was rolled back"* ]]
  grep -q '^kubectl -n akidb rollout undo daemonset/akidb-serve$' "$FAKE_LOG"
  grep -q '^kubectl -n akidb rollout undo deployment/model-server$' "$FAKE_LOG"
  # The undo comes after the smoke test, and its rollout is waited for.
  [ "$(grep -n '^curl ' "$FAKE_LOG" | cut -d: -f1)" -lt "$(grep -n 'rollout undo daemonset' "$FAKE_LOG" | cut -d: -f1)" ]
  [ "$(tail -1 "$FAKE_LOG")" = "kubectl -n akidb rollout status daemonset/akidb-serve --timeout=300s" ]
}

@test "deploy: a rollout that does not finish rolls back too; a failed import stops before applying" {
  five_boards
  images 0.1.0-slow
  # shellcheck disable=SC2046
  FAKE_FAIL='rollout status daemonset/akidb-serve --timeout=300s$' run "$scripts/deploy.sh" $(deploy_args)
  [ "$status" -eq 1 ]
  [[ "$output" == *"daemonset/akidb-serve did not become ready"* ]]
  grep -q 'rollout undo daemonset/akidb-serve' "$FAKE_LOG"

  : >"$FAKE_LOG"
  rm -f "$FAKE_STATE/kube/applied-tag"
  images 0.1.0-next
  # shellcheck disable=SC2046
  FAKE_FAIL='^\[jetson-3\] k3s ctr -n k8s.io images import' run "$scripts/deploy.sh" $(deploy_args)
  [ "$status" -ne 0 ]
  refute grep -q 'kubectl apply' "$FAKE_LOG"
}

@test "rollback drain: cordon, evict, PDB check, then the serve pod leaves; dry run = real run; second run changes nothing" {
  n=$FAKE_STATE/kube/node-jetson-2
  mkdir -p "$n/labels"
  echo true >"$n/labels/akidb.io_serve"
  echo akidb-serve-x7k2p >"$n/serve-pods"
  echo akidb/model-server-5d9c-abc >"$n/other-pods"
  run "$scripts/rollback.sh" --dry-run drain jetson-2
  [ "$status" -eq 0 ]
  dry=$(changes "$output")
  [ -e "$n/labels/akidb.io_serve" ] && [ ! -e "$n/unschedulable" ]
  run "$scripts/rollback.sh" drain jetson-2
  [ "$status" -eq 0 ]
  [ "$(changes "$output")" = "$dry" ]
  [ "$dry" = "+ kubectl cordon jetson-2
+ kubectl drain jetson-2 --ignore-daemonsets --delete-emptydir-data --timeout=120s
+ kubectl label node jetson-2 akidb.io/serve-
+ kubectl -n akidb wait --for=delete pod/akidb-serve-x7k2p --timeout=120s" ]
  grep -q '^kubectl -n akidb get pdb akidb-serve' "$FAKE_LOG"
  [[ "$output" == *"jetson-2 drained"*"akidb-serve-x7k2p finished its in-flight requests"* ]]
  run "$scripts/rollback.sh" drain jetson-2
  [ "$status" -eq 0 ]
  [ -z "$(changes "$output")" ]
  run "$scripts/rollback.sh" uncordon jetson-2
  [ "$(changes "$output")" = "+ kubectl label node jetson-2 akidb.io/serve=true --overwrite
+ kubectl uncordon jetson-2" ]
}

@test "rollback drain: refuses to take the serve pod when the PodDisruptionBudget allows no disruption" {
  n=$FAKE_STATE/kube/node-jetson-1
  mkdir -p "$n/labels"
  echo true >"$n/labels/akidb.io_serve"
  echo akidb-serve-q1w2e >"$n/serve-pods"
  echo 0 >"$FAKE_STATE/kube/pdb-allowed"
  run "$scripts/rollback.sh" drain jetson-1
  [ "$status" -eq 1 ]
  [[ "$output" == *"PodDisruptionBudget akidb-serve allows no disruption now: jetson-1 stays cordoned and its akidb-serve pod (akidb-serve-q1w2e) keeps serving"* ]]
  [ -e "$n/labels/akidb.io_serve" ]
  refute grep -q 'label node' "$FAKE_LOG"
}

@test "rollback undo: the previous revision of both workloads, then waits for it" {
  run "$scripts/rollback.sh" undo
  [ "$status" -eq 0 ]
  [ "$(changes "$output")" = "+ kubectl -n akidb rollout undo daemonset/akidb-serve
+ kubectl -n akidb rollout undo deployment/model-server
+ kubectl -n akidb rollout status daemonset/akidb-serve --timeout=120s" ]
  FAKE_FAIL='rollout undo daemonset' run "$scripts/rollback.sh" undo
  [ "$status" -ne 0 ]
}

@test "deploy: the model data goes to the model-store board once, owned by the service's user" {
  five_boards
  images 0.1.0-abc
  data=$BATS_TEST_TMPDIR/data
  mkdir -p "$data/blobs/sha256"
  echo db >"$data/registry.sqlite"
  echo blob >"$data/blobs/sha256/ab"
  # shellcheck disable=SC2046
  run "$scripts/deploy.sh" $(deploy_args) --model-data "$data" --model-store ubuntu@jetson-0
  [ "$status" -eq 0 ]
  store=$FAKE_BOARDS/jetson-0/var/lib/akidb/model-server
  [ "$(cat "$store/blobs/sha256/ab")" = blob ]
  [ "$(stat -c %u "$store/registry.sqlite")" = 65532 ]
  grep -q '^+ ssh .* ubuntu@jetson-0 sudo sh -c' <<<"$output"
  # shellcheck disable=SC2046
  run "$scripts/deploy.sh" $(deploy_args) --model-data "$data" --model-store ubuntu@jetson-0
  [ "$status" -eq 0 ]
  refute grep -q '^+ ssh .* sudo sh -c' <<<"$output"
  echo db2 >"$data/registry.sqlite"
  # shellcheck disable=SC2046
  run "$scripts/deploy.sh" $(deploy_args) --model-data "$data" --model-store ubuntu@jetson-0
  [ "$(cat "$store/registry.sqlite")" = db2 ]
}
