#!/usr/bin/env bash
# The Jetson / cluster tests, from a fresh Debian machine with Rust, Python 3 and Node (CI: from a clean
# clone with ../shared beside it). Installs what it needs (Debian: buildah, skopeo, umoci, bats,
# qemu-user-static, ShellCheck; PyPI, pinned, in target/tools/jetson-venv: yamllint, kubernetes-validate,
# checkov); a second run installs nothing.
#   1. manifests: yamllint; every overlay through `kubectl kustomize`, then kubernetes-validate --strict for
#      each Kubernetes minor that k3s ships today; checkov (kubernetes framework) on the rendered overlays
#   2. scripts: shellcheck; bats against fake ssh / kubectl / k3s (jetson/tests/scripts.bats)
#   3. images: the aarch64 build (jetson/build.sh), the four images (jetson/images/build.sh), their check
#      (jetson/images/check.sh: skopeo, umoci, the arm64 akidb from its image serving golden sentences
#      under qemu). JETSON_SKIP_IMAGES=1 skips this part (and says so) for a quick run of 1 and 2.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
step() { printf '\n== jetson tests: %s\n' "$*" >&2; }
start=$SECONDS

# The Kubernetes minors of k3s's maintained release lines (its stable channel and the two before it).
k8s_versions=(1.35.0 1.36.0 1.37.0)
venv=target/tools/jetson-venv
py_tools=(yamllint==1.38.0 kubernetes-validate==1.37.0 checkov==3.3.30)

step "tools"
apt_missing=()
for pair in buildah:buildah skopeo:skopeo umoci:umoci bats:bats shellcheck:shellcheck qemu-aarch64-static:qemu-user-static; do
  command -v "${pair%%:*}" >/dev/null || apt_missing+=("${pair#*:}")
done
if [ ${#apt_missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi
if [ ! -f "$venv/.installed" ] || [ "$(cat "$venv/.installed")" != "${py_tools[*]}" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${py_tools[@]}"
  echo "${py_tools[*]}" >"$venv/.installed"
fi
command -v kubectl >/dev/null || {
  echo "kubectl is missing (its kustomize renders the overlays): install kubectl, then rerun" >&2
  exit 1
}

step "yamllint"
"$venv/bin/yamllint" --strict -c jetson/tests/yamllint.yaml jetson/k8s

step "kustomize + kubernetes-validate --strict (${k8s_versions[*]})"
rendered=target/jetson-tests/rendered
rm -rf "$rendered" && mkdir -p "$rendered"
for overlay in jetson jetson-gpu origin; do
  kubectl kustomize "jetson/k8s/overlays/$overlay" >"$rendered/$overlay.yaml"
  for version in "${k8s_versions[@]}"; do
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$rendered/$overlay.yaml"
  done
  echo "$overlay: $(grep -c '^kind:' "$rendered/$overlay.yaml") objects, valid (strict) for ${k8s_versions[*]}" >&2
done

step "checkov (kubernetes framework)"
# Skipped, and why:
#   CKV_K8S_15 (image pull policy Always) and CKV_K8S_43 (image by digest): the nodes have no registry to
#   pull from; deploy.sh imports the image archives into each node's containerd, so the pods must not pull
#   (imagePullPolicy: Never), and the tag is unique per commit (VERSION-REVISION), which is what
#   `kubectl rollout undo` needs to find the previous image.
# --skip-download: no network calls to the vendor's API (guidelines, severities), which only add links.
"$venv/bin/checkov" --skip-download --quiet --compact --framework kubernetes -d "$rendered" --skip-check CKV_K8S_15,CKV_K8S_43

step "shellcheck"
shellcheck -x jetson/*.sh jetson/images/*.sh jetson/scripts/*.sh jetson/tests/run.sh jetson/tests/scripts.bats \
  jetson/tests/fakes/_record.sh jetson/tests/fakes/ssh jetson/tests/fakes/kubectl jetson/tests/fakes/curl \
  jetson/tests/fakes/remote/*

step "bats: setup-cluster.sh, deploy.sh, rollback.sh against fakes"
bats jetson/tests/scripts.bats

if [ "${JETSON_SKIP_IMAGES:-0}" = 1 ]; then
  echo "JETSON_SKIP_IMAGES=1: the image build and check were NOT run" >&2
else
  step "images: aarch64 build, four OCI archives, their check"
  bash jetson/build.sh
  bash jetson/images/build.sh
  bash jetson/images/check.sh
fi
echo "jetson tests passed in $((SECONDS - start)) s" >&2
