#!/usr/bin/env bash
# Rewrites the generated sections of README.md (the report and the price sources) from the model.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import akidb_cost as m
readme = (m.HERE / "README.md").read_text()
prices, plan = m.load_json(m.PRICES), m.load_json(m.PLAN)
cdk = m.load_json(m.CDK_DEFAULTS) if m.CDK_DEFAULTS.exists() else None
for name, text in [("report", m.report(prices, plan, cdk)), ("sources", m.render_sources(prices))]:
    begin, end = f"<!-- {name}:begin -->\n", f"<!-- {name}:end -->"
    head, rest = readme.split(begin, 1)
    readme = head + begin + "\n" + text.strip() + "\n\n" + end + rest.split(end, 1)[1]
(m.HERE / "README.md").write_text(readme)
PY
