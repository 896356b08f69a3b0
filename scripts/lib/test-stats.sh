#!/usr/bin/env bash
# The tests of scripts/lib/: benchstats.py (hand-computed sample sets, the
# raw-sample reader's errors, the printers, the command line) and service.sh (free_port, wait_ready,
# start_service/stop_services against real processes on loopback; start_moto against a real moto_server,
# which scripts/install-moto.sh installs first). Python 3 standard library, bash and curl, and moto.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/../install-moto.sh"
# No __pycache__ left in the source tree.
PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s "$here" -p 'test_*.py' -v 2>&1
