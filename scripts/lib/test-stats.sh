#!/usr/bin/env bash
# The benchmark-statistics module's tests (scripts/lib/benchstats.py): hand-computed sample sets, the
# raw-sample reader's errors, the printers, the command line. Python 3 standard library only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python3 -m unittest discover -s "$here" -p 'test_*.py' -v 2>&1
