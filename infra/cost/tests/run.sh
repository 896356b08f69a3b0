#!/usr/bin/env bash
# The cost model's tests: hand-computed figures, the plan's lines, bad input, the README's tables.
# Needs only Python 3 (standard library).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m unittest -v tests/test_cost.py
