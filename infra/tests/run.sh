#!/usr/bin/env bash
# Every test of infra/ (the CDK app and its scripts), from a clean clone with ../shared beside it:
#   lint (shellcheck) → tsc → assertion + cdk-nag tests (node --test) → cdk synth of every stack → cfn-lint
#   → bats (scripts' --dry-run) → moto: deploy the templates, read back, scripts' real-run paths (bats).
# Installs what it needs (pinned; skipped when already there): npm packages (npm ci), a Python venv with
# cfn-lint, moto and the AWS CLI, and shellcheck/bats/jq/brotli/curl from apt.
set -euo pipefail
INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$INFRA_DIR"
WORK="$INFRA_DIR/tests/.work"
VENV="$INFRA_DIR/.venv"
PY_PINS="cfn-lint==1.51.0 moto[server]==5.2.1 awscli==1.45.11 boto3==1.43.11 botocore==1.43.11"
FIXTURE_ZIP="$INFRA_DIR/test/fixtures/fixture-akidb-edge.zip"
export CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=true
START=$SECONDS
phase() { printf '\n== %s (%ds)\n' "$*" $((SECONDS - START)); }

phase "install"
missing=()
for tool in shellcheck bats jq brotli curl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [[ ${#missing[@]} -gt 0 ]]; then
  sudo=(); [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi
if [[ ! -x $VENV/bin/python || $(cat "$VENV/.pins" 2>/dev/null) != "$PY_PINS" ]]; then
  if ! python3 -m venv "$VENV"; then
    # Debian's own python3 keeps venv in a package of its own.
    sudo=(); [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends python3-venv
    python3 -m venv "$VENV"
  fi
  # shellcheck disable=SC2086  # the pins are separate words
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $PY_PINS
  printf '%s' "$PY_PINS" > "$VENV/.pins"
fi
export PATH="$VENV/bin:$PATH"
rm -rf "$WORK"
mkdir -p "$WORK"

phase "shellcheck"
shellcheck -x -P SCRIPTDIR scripts/*.sh tests/*.sh

phase "tsc"
npx --no-install tsc -p tsconfig.json

phase "assertion tests + cdk-nag (node --test)"
node --test dist/test/all.js

phase "cdk synth (every stack, no credentials)"
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_PROFILE AWS_EC2_METADATA_DISABLED=true \
  npx --no-install cdk synth --quiet --no-notices -c "edgeZip=$FIXTURE_ZIP" -o "$WORK/cdk.out"
templates=("$WORK"/cdk.out/*.template.json)
[[ ${#templates[@]} -eq 8 ]] || { echo "expected 8 templates, got ${#templates[@]}" >&2; exit 1; }

phase "cfn-lint"
rc=0
cfn-lint "${templates[@]}" || rc=$?
# cfn-lint's exit status is a bit mask: 2 = errors (1 = it could not run); 4 and 8 are warnings / notes.
if (( rc & 3 )); then echo "cfn-lint found errors (exit $rc)" >&2; exit 1; fi

phase "bats: scripts --dry-run"
bats tests/scripts-dry-run.bats

phase "moto: deploy, read back, scripts' real runs"
# This venv's moto (its pins beside cfn-lint's), started and awaited as every script starts one.
# shellcheck source=../../scripts/lib/service.sh
source "$INFRA_DIR/../scripts/lib/service.sh"
trap stop_services EXIT
MOTO_SERVER="$VENV/bin/moto_server" start_moto "$WORK"
export MOTO_ENDPOINT=$moto_url
zone=$(AWS_ENDPOINT_URL=$MOTO_ENDPOINT AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 aws route53 create-hosted-zone \
  --name "$(jq -r .hostedZone.name config/default.json)" --caller-reference "run-$$" --query HostedZone.Id --output text)
# moto's default account and the zone it just made; everything else is the default config.
export MOTO_CONFIG="$WORK/moto-config.json"
jq --arg zone "${zone#/hostedzone/}" '.account = "123456789012" | .hostedZone.id = $zone' config/default.json > "$MOTO_CONFIG"
npx --no-install cdk synth --quiet --no-notices -c "config=$MOTO_CONFIG" -c "edgeZip=$FIXTURE_ZIP" -o "$WORK/cdk.out.moto" > "$WORK/synth-moto.log"
python3 tests/moto_deploy.py "$MOTO_ENDPOINT" "$WORK/cdk.out.moto" "$MOTO_CONFIG" "$WORK/moto-report.json"
bats tests/scripts-moto.bats

phase "all infra tests passed"
