#!/usr/bin/env bash
# Installs moto_server (moto[server], the version infra pins) into target/tools/moto-venv, for the S3 cases
# of model-server's tests (they find it there, or at $MOTO_SERVER). Idempotent: a venv that already holds
# this moto version is left as it is, so a second run takes well under a second.
# Needs: python3 (3.11) with the venv module, and PyPI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$root/target/tools/moto-venv
want=5.2.1

installed() {
  [[ -x $venv/bin/moto_server ]] &&
    "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('moto') != '$want')" 2>/dev/null
}

if installed; then
  echo "moto $want: $venv/bin/moto_server"
  exit 0
fi
mkdir -p "$(dirname "$venv")"
# Two runs at once (the lead's test script and a developer) would both pip into the same venv: serialise.
exec 9>"$venv.lock"
flock 9
if ! installed; then
  [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$want"
fi
installed || { echo "moto $want did not install into $venv" >&2; exit 1; }
echo "moto $want: $venv/bin/moto_server"
